package jpeg

import (
	"fmt"
	"image"
)

// maxPixels bounds width*height before anything is allocated: larger frames
// are refused as absurd (a 12-MP photo is 1<<23.5).
const maxPixels = 1 << 27

// Options says what part of the image to decode, at what size.
type Options struct {
	// Scale is 1, 2, 4 or 8 (0 means 1): the output is
	// ceil(Width/Scale) x ceil(Height/Scale), as libjpeg's scale_num=1,
	// scale_denom=Scale gives (djpeg -scale 1/Scale), made with the
	// reduced-size IDCTs libjpeg-turbo uses for that size.
	Scale int
	// Region, when not empty, is the part of the (scaled) output the
	// caller needs: the decoder skips the IDCT, upsampling and colour
	// conversion of blocks outside it (the entropy decoding of the whole
	// scan is unavoidable). Pixels inside Region are exactly those of a
	// whole-image decode; pixels outside are unspecified. A Region that
	// does not meet the output is an error.
	Region image.Rectangle
}

// Image is decoded pixels, planar 8-bit: Channels planes of Width*Height
// bytes, row-major. Channels is 1 for greyscale files, 3 (R, G, B)
// otherwise; CMYK and YCCK files are converted to RGB as Pillow's
// convert("RGB") does.
type Image struct {
	Width, Height, Channels int
	Pix                     []uint8
}

// Decoder holds reusable buffers; use one per goroutine. The zero value is
// ready.
type Decoder struct {
	parser
	huff [2][4]huffTable // [class: 0 DC, 1 AC][table index]

	// For the decode at hand.
	opts       Options
	data       []byte
	dst        *Image
	color      colorModel
	minSS      int // block size after the IDCT for the largest components
	outW, outH int
	reg        image.Rectangle // the output pixels wanted
	cropped    bool            // reg is not the whole output
	scans      int
	rowsDone   int // output rows already converted
	br         bitReader
	eobRun     int        // progressive end-of-band run (G.1.2.2)
	blk        [128]int32 // a block's coefficients; blk[64] is a dummy

	// Buffers kept between decodes.
	planeBuf [maxComponents][]uint8
	coefBuf  [maxComponents][]int16
	maskBuf  [maxComponents][]uint64
	rowBuf   [maxComponents][]uint8

	// rawCMYK (set by tests) makes 4-component files decode to libjpeg's
	// CMYK output, the planes C, M, Y, K, instead of RGB.
	rawCMYK bool
}

// component is one colour component: its SOF fields, and its geometry and
// buffers for the decode at hand.
type component struct {
	id     uint8
	h, v   int   // sampling factors (1, 1 for a single-component image)
	tq     uint8 // quantization table index
	bw, bh int   // blocks inside the image (libjpeg's width_in_blocks, height_in_blocks)

	ss       int      // samples per block side after the (reduced) IDCT: 1, 2, 4 or 8
	dsW, dsH int      // size in samples after the IDCT (libjpeg's downsampled_width, _height)
	stride   int      // plane row length: every block of the MCU grid
	plane    []uint8  // IDCT output, stride x (MCU rows * v * ss)
	coef     []int16  // progressive only: coefficients, 64 per block, natural order
	nz       []uint64 // progressive only: per block, bit k set if AC coefficient k (zig-zag) is non-zero
	up       upsampler
	// Blocks whose samples the output (Region) needs: [bx0, bx1) x [by0, by1).
	bx0, bx1, by0, by1 int

	q       [64]int32 // quantization table latched at the first scan (zig-zag order)
	latched bool
	pred    int32 // DC predictor
	scanned bool  // has had a sequential scan or, progressive, a DC scan
	// al[k], progressive only, is the Al (the bit position) of the last
	// scan that coded coefficient k (zig-zag), -1 before any: libjpeg's
	// coef_bits. The image is complete when every one is 0.
	al [64]int8
}

// Decode decodes data into dst, reusing dst.Pix when it is large enough.
// Every malformed or truncated input is an error; dst is then unspecified.
func (d *Decoder) Decode(data []byte, opts Options, dst *Image) error {
	if opts.Scale == 0 {
		opts.Scale = 1
	}
	switch opts.Scale {
	case 1, 2, 4, 8:
	default:
		return fmt.Errorf("jpeg: Scale %d is not 1, 2, 4 or 8", opts.Scale)
	}
	if dst == nil {
		return fmt.Errorf("jpeg: nil destination Image")
	}
	d.opts, d.data, d.dst = opts, data, dst
	d.scans, d.rowsDone, d.eobRun = 0, 0, 0
	for i := range d.huff {
		for j := range d.huff[i] {
			d.huff[i][j].defined = false
		}
	}
	defer func() { d.data, d.dst, d.br.data = nil, nil, nil }()

	if err := d.parser.parse(data, d); err != nil {
		return err
	}
	return d.finish()
}

// start runs at the first SOS: the frame is known, so it checks the size,
// decides the colour model and the geometry, and allocates.
func (d *Decoder) start() error {
	f := &d.f
	if int64(f.width)*int64(f.height) > maxPixels {
		return FormatError(fmt.Sprintf("image is %dx%d, more than %d pixels", f.width, f.height, maxPixels))
	}
	// Every block costs at least one bit (its DC code), so a file with
	// fewer bits than blocks is truncated: refuse it before allocating for
	// a frame size it cannot fill.
	blocks := 0
	for i := 0; i < f.nComp; i++ {
		blocks += f.comp[i].bw * f.comp[i].bh
	}
	if blocks > 8*len(d.data) {
		return fmt.Errorf("%w: a file of %d bytes is too short for a %dx%d image", ErrTruncated, len(d.data), f.width, f.height)
	}
	d.color = d.colorModel()
	if !f.progressive() {
		d.setStandardTables()
	}
	if err := d.layout(); err != nil {
		return err
	}
	d.allocate()
	return nil
}

// colorModel guesses the file's colour space as libjpeg's
// default_decompress_parms does (jdapimin.c).
func (d *Decoder) colorModel() colorModel {
	f := &d.f
	switch f.nComp {
	case 1:
		return cmGray
	case 3:
		switch {
		case d.jfif:
			return cmYCbCr
		case d.adobe:
			if d.adobeXform == 0 {
				return cmRGB
			}
			return cmYCbCr
		case f.comp[0].id == 'R' && f.comp[1].id == 'G' && f.comp[2].id == 'B':
			return cmRGB
		}
		return cmYCbCr
	}
	if d.adobe && d.adobeXform != 0 {
		return cmYCCK
	}
	return cmCMYK
}

// layout computes the output size, each component's scaled geometry and
// upsampling method (jdmaster.c jpeg_calc_output_dimensions, jdsample.c
// jinit_upsampler), and the blocks that Region needs.
func (d *Decoder) layout() error {
	f := &d.f
	d.minSS = 8 / d.opts.Scale
	d.outW = ceilDiv(f.width*d.minSS, 8)
	d.outH = ceilDiv(f.height*d.minSS, 8)
	out := image.Rect(0, 0, d.outW, d.outH)
	d.reg = out
	if !d.opts.Region.Empty() {
		d.reg = d.opts.Region.Intersect(out)
		if d.reg.Empty() {
			return fmt.Errorf("jpeg: Region %v is outside the %dx%d output", d.opts.Region, d.outW, d.outH)
		}
	}
	d.cropped = d.reg != out
	for i := 0; i < f.nComp; i++ {
		c := &f.comp[i]
		// Scale chroma up through the IDCT rather than by upsampling
		// where the ratios allow (the IDCT_SCALING_SUPPORTED loop).
		ss := d.minSS
		for ss < 8 && (f.maxH*d.minSS)%(c.h*ss*2) == 0 && (f.maxV*d.minSS)%(c.v*ss*2) == 0 {
			ss *= 2
		}
		c.ss = ss
		c.dsW = ceilDiv(f.width*c.h*ss, f.maxH*8)
		c.dsH = ceilDiv(f.height*c.v*ss, f.maxV*8)
		c.stride = f.mcusX * c.h * ss
		hIn, vIn := c.h*ss/d.minSS, c.v*ss/d.minSS
		up, err := chooseUpsampler(hIn, vIn, f.maxH, f.maxV, d.minSS > 1, c.dsW)
		if err != nil {
			return err
		}
		c.up = up

		// The samples the output needs, with one sample of margin for the
		// triangle filters, then the blocks holding them.
		x0 := max(d.reg.Min.X/up.hx-1, 0)
		x1 := min((d.reg.Max.X-1)/up.hx+1, c.dsW-1)
		y0 := max(d.reg.Min.Y/up.vy-1, 0)
		y1 := min((d.reg.Max.Y-1)/up.vy+1, c.dsH-1)
		c.bx0, c.bx1 = x0/ss, x1/ss+1
		c.by0, c.by1 = y0/ss, y1/ss+1
	}
	return nil
}

// allocate sizes the planes, the coefficient buffers and dst, reusing what
// earlier decodes left.
func (d *Decoder) allocate() {
	f := &d.f
	for i := 0; i < f.nComp; i++ {
		c := &f.comp[i]
		c.plane = grow(&d.planeBuf[i], c.stride*f.mcusY*c.v*c.ss)
		if f.progressive() {
			n := f.mcusX * c.h * f.mcusY * c.v * 64
			if cap(d.coefBuf[i]) < n {
				d.coefBuf[i] = make([]int16, n)
			} else {
				d.coefBuf[i] = d.coefBuf[i][:n]
				clear(d.coefBuf[i])
			}
			c.coef = d.coefBuf[i]
			if nb := n / 64; cap(d.maskBuf[i]) < nb {
				d.maskBuf[i] = make([]uint64, nb)
			} else {
				d.maskBuf[i] = d.maskBuf[i][:nb]
				clear(d.maskBuf[i])
			}
			c.nz = d.maskBuf[i]
		}
		grow(&d.rowBuf[i], d.outW+1)
	}
	m := d.dst
	m.Width, m.Height = d.outW, d.outH
	m.Channels = 3
	switch {
	case d.color == cmGray:
		m.Channels = 1
	case d.rawCMYK && f.nComp == 4:
		m.Channels = 4
	}
	m.Pix = grow(&m.Pix, m.Channels*m.Width*m.Height)
}

// grow returns (*b)[:n], reallocating when its capacity is short.
func grow(b *[]uint8, n int) []uint8 {
	if cap(*b) < n {
		*b = make([]uint8, n)
	}
	*b = (*b)[:n]
	return *b
}

// scan is an SOS header (B.2.3).
type scan struct {
	nc     int
	comp   [maxComponents]int   // indexes into frame.comp
	td, ta [maxComponents]uint8 // DC and AC table indexes
	ss, se int                  // spectral selection, zig-zag indexes
	ah, al uint                 // successive approximation bit positions
}

func (d *Decoder) parseSOS(seg []byte) (scan, error) {
	f := &d.f
	var s scan
	if len(seg) < 1 {
		return s, FormatError("SOS segment too short")
	}
	s.nc = int(seg[0])
	if s.nc < 1 || s.nc > f.nComp || len(seg) != 4+2*s.nc {
		return s, FormatError(fmt.Sprintf("SOS segment length %d does not fit its %d components", len(seg)+2, s.nc))
	}
	blocksInMCU := 0
	for i := 0; i < s.nc; i++ {
		id := seg[1+2*i]
		ci := -1
		for j := 0; j < f.nComp; j++ {
			if f.comp[j].id == id {
				ci = j
			}
		}
		if ci < 0 {
			return s, FormatError(fmt.Sprintf("SOS names component %d, which the SOF does not have", id))
		}
		for j := 0; j < i; j++ {
			if s.comp[j] == ci {
				return s, FormatError(fmt.Sprintf("SOS names component %d twice", id))
			}
		}
		s.comp[i] = ci
		s.td[i], s.ta[i] = seg[2+2*i]>>4, seg[2+2*i]&0x0f
		if s.td[i] > 3 || s.ta[i] > 3 {
			return s, FormatError(fmt.Sprintf("bad Huffman table selector %#02x in SOS", seg[2+2*i]))
		}
		blocksInMCU += f.comp[ci].h * f.comp[ci].v
	}
	if s.nc > 1 && blocksInMCU > 10 {
		return s, FormatError(fmt.Sprintf("interleaved scan with %d blocks per MCU (at most 10)", blocksInMCU))
	}
	t := seg[1+2*s.nc:]
	s.ss, s.se, s.ah, s.al = int(t[0]), int(t[1]), uint(t[2]>>4), uint(t[2]&0x0f)
	return s, nil
}

// decodeScan decodes one scan whose entropy-coded data start at data[pos],
// and returns where they end.
func (d *Decoder) decodeScan(seg, data []byte, pos int) (int, error) {
	if d.scans == 0 {
		if err := d.start(); err != nil {
			return 0, err
		}
	}
	d.scans++
	next, err := d.scan(seg, data, pos)
	if err != nil {
		return 0, scanError{d.scans, err}
	}
	return next, nil
}

// scan does decodeScan's work for one scan.
func (d *Decoder) scan(seg, data []byte, pos int) (int, error) {
	s, err := d.parseSOS(seg)
	if err != nil {
		return 0, err
	}
	for i := 0; i < s.nc; i++ {
		c := &d.f.comp[s.comp[i]]
		if d.f.progressive() && !c.latched {
			for k := range c.al {
				c.al[k] = -1
			}
		}
		if !c.latched {
			// libjpeg latches a component's table at its first scan
			// (jdinput.c latch_quant_tables); later DQTs do not change it.
			t := &d.quant[c.tq]
			if !t.defined {
				return 0, FormatError(fmt.Sprintf("quantization table %d used by component %d is not defined", c.tq, c.id))
			}
			c.q, c.latched = t.q, true
		}
	}
	if d.f.progressive() {
		if err := d.checkProgressiveScan(&s); err != nil {
			return 0, err
		}
		if s.ss > 0 && d.f.comp[s.comp[0]].ss == 1 {
			// An AC band of a component reduced to one sample per block
			// (luma at scale 1/8): the 1x1 IDCT reads only the DC, so the
			// scan's data are stepped over unread.
			return skipEntropyData(data, pos), nil
		}
	}
	d.br.data = data
	d.br.reset(pos)
	if d.f.progressive() {
		err = d.decodeProgressiveScan(&s)
	} else {
		err = d.decodeSequentialScan(&s)
	}
	if d.br.overrun() {
		// Whatever went wrong, the data ended first: decoding the zero
		// padding can also trip a structural check.
		return 0, ErrTruncated
	}
	if err != nil {
		return 0, err
	}
	return d.br.next, nil
}

// checkTables reports a scan's missing or unsuitable Huffman tables.
func (d *Decoder) checkTables(s *scan, needDC, needAC bool) error {
	for i := 0; i < s.nc; i++ {
		if needDC {
			h := &d.huff[0][s.td[i]]
			if !h.defined {
				return FormatError(fmt.Sprintf("DC Huffman table %d is not defined", s.td[i]))
			}
			if !h.dcOK {
				return FormatError(fmt.Sprintf("DC Huffman table %d has symbols above 15", s.td[i]))
			}
		}
		if needAC && !d.huff[1][s.ta[i]].defined {
			return FormatError(fmt.Sprintf("AC Huffman table %d is not defined", s.ta[i]))
		}
	}
	return nil
}

// finish runs at EOI: it checks that every component was coded,
// reconstructs a progressive image, and converts the rows not yet output.
func (d *Decoder) finish() error {
	f := &d.f
	for i := 0; i < f.nComp; i++ {
		c := &f.comp[i]
		if !c.scanned {
			return FormatError(fmt.Sprintf("component %d has no scan data", c.id))
		}
		if f.progressive() && c.al != [64]int8{} {
			// Scans are missing, or stop short of full precision: what a
			// progressive file cut between scans looks like. libjpeg would
			// show the coarser image; the loader wants to skip the file.
			return fmt.Errorf("%w: the progressive scans of component %d do not complete its coefficients", ErrTruncated, c.id)
		}
	}
	if f.progressive() {
		d.reconstructProgressive()
	}
	d.emit(d.outH)
	return nil
}

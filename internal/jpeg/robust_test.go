package jpeg

import (
	"bytes"
	"errors"
	"image"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

func readTestFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// decodeNoPanic decodes data at a scale and with a region derived from
// seed, turning a panic into a test failure that names the input.
func decodeNoPanic(t *testing.T, d *Decoder, m *Image, data []byte, opts Options, what string) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s: panic: %v", what, r)
		}
	}()
	if _, herr := DecodeHeader(data); herr != nil && len(data) > 0 {
		_ = herr // DecodeHeader must not panic either; errors are fine
	}
	return d.Decode(data, opts, m)
}

// TestTruncatedEveryCut cuts small files at every byte: each prefix is an
// error (at least the EOI marker is missing), never a panic or an image.
func TestTruncatedEveryCut(t *testing.T) {
	var d Decoder
	var m Image
	for _, name := range []string{
		"pil_420_q90.jpg", "pil_420_q75_prog.jpg", "cj_420_rst2b.jpg", "cj_420_prog_rst.jpg",
		"pil_grey_prog.jpg", "pil_444_q95_prog.jpg", "im_cmyk_420.jpg", "pil_420_7x13.jpg",
	} {
		data := readTestFile(t, name)
		for cut := 0; cut < len(data); cut++ {
			scale := []int{1, 2, 4, 8}[cut%4]
			err := decodeNoPanic(t, &d, &m, data[:cut], Options{Scale: scale}, name)
			if err == nil {
				t.Fatalf("%s cut at %d of %d: no error", name, cut, len(data))
			}
		}
	}
}

// scanRanges returns the [start, end) byte ranges of the entropy-coded data
// of each scan of a well-formed file.
func scanRanges(t testing.TB, data []byte) [][2]int {
	var out [][2]int
	pos := 2
	for pos < len(data) {
		m, next, ok := nextMarker(data, pos)
		if !ok || m == eoiMarker {
			break
		}
		pos = next
		if m >= rst0Marker && m <= rst7Marker {
			continue
		}
		n := int(data[pos])<<8 | int(data[pos+1])
		pos += n
		if m == sosMarker {
			var br bitReader
			br.data = data
			start := pos
			for {
				br.reset(pos)
				mk, after, ok := nextMarker(data, br.next)
				if !ok || mk < rst0Marker || mk > rst7Marker {
					break
				}
				pos = after
			}
			out = append(out, [2]int{start, br.next})
			pos = br.next
		}
	}
	if len(out) == 0 {
		t.Fatal("no scans found")
	}
	return out
}

// TestTruncatedScanWithEOI cuts files inside their scan data and appends
// an EOI marker, so that nothing but the short scan is wrong: libjpeg
// would fill the rest with grey; this decoder must say the data are
// truncated (ErrTruncated, or for files with restart markers possibly a
// missing-marker error). The exception: at scale 1/8 the AC scans of a
// progressive file's luma are not read (only the DC matters), so a cut
// there can go unnoticed, but then the output is exactly that of the
// whole file, not a grey fill.
func TestTruncatedScanWithEOI(t *testing.T) {
	var d Decoder
	var m Image
	files := map[string][]byte{}
	for _, name := range []string{
		"pil_420_q90_320x240.jpg", "pil_422_prog_256x192.jpg", "cj_420_rst2b.jpg", "cj_grey_rst.jpg",
		"im_cmyk.jpg", "pil_420_q90.jpg", "pil_420_q75_prog.jpg", "cj_440.jpg", "im_ycck.jpg",
	} {
		files[name] = readTestFile(t, name)
	}
	files["big"] = bigTestJPEG(t)
	rng := rand.New(rand.NewPCG(5, 6))
	var whole Image
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data := files[name]
		if err := d.Decode(data, Options{Scale: 8}, &whole); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		whole.Pix = bytes.Clone(whole.Pix)
		for _, r := range scanRanges(t, data) {
			// Every cut in small files, some in the big ones.
			var cuts []int
			if len(data) < 8000 {
				for c := r[0]; c < r[1]; c++ {
					cuts = append(cuts, c)
				}
			} else {
				cuts = []int{r[0], r[0] + 1, r[1] - 1}
				for i := 0; i < 40; i++ {
					cuts = append(cuts, r[0]+rng.IntN(r[1]-r[0]))
				}
			}
			for _, cut := range cuts {
				cutData := append(bytes.Clone(data[:cut]), 0xff, eoiMarker)
				scale := []int{1, 2, 4, 8}[cut%4]
				err := decodeNoPanic(t, &d, &m, cutData, Options{Scale: scale}, name)
				if err == nil && scale == 8 && strings.Contains(name, "prog") {
					if desc, _, _ := imageDiff(&m, &whole, image.Rectangle{}); desc != "" {
						t.Fatalf("%s cut at %d, scale 1/8: no error, and %s", name, cut, desc)
					}
					continue
				}
				if err == nil {
					t.Fatalf("%s cut at %d in scan data [%d, %d), scale 1/%d: no error", name, cut, r[0], r[1], scale)
				}
				restarts := strings.Contains(name, "rst")
				if !restarts && !errors.Is(err, ErrTruncated) {
					t.Errorf("%s cut at %d: %v, want ErrTruncated", name, cut, err)
				}
			}
		}
	}
}

// TestProgressiveMissingScans drops the last scans of progressive files,
// keeping the EOI: the coarser image libjpeg would show is an error here.
func TestProgressiveMissingScans(t *testing.T) {
	var d Decoder
	var m Image
	for _, name := range []string{"pil_420_q75_prog.jpg", "cj_420_prog_rst.jpg", "pil_grey_prog.jpg", "im_cmyk_prog.jpg"} {
		data := readTestFile(t, name)
		ranges := scanRanges(t, data)
		for i, r := range ranges[:len(ranges)-1] {
			cut := append(bytes.Clone(data[:r[1]]), 0xff, eoiMarker)
			for _, scale := range []int{1, 8} {
				err := d.Decode(cut, Options{Scale: scale}, &m)
				if !errors.Is(err, ErrTruncated) {
					t.Errorf("%s without the scans after scan %d, scale 1/%d: %v, want ErrTruncated", name, i, scale, err)
				}
			}
		}
	}
}

// bigTestJPEG is a 1600x1200 photo-like JPEG from Go's encoder: the
// testdata photo upscaled with noise (see bench_test.go).
func bigTestJPEG(t testing.TB) []byte {
	return photoJPEG(t, 1600, 1200, 90)
}

// TestCorruptedNoPanic flips random bytes of valid files: any outcome but
// a panic is acceptable.
func TestCorruptedNoPanic(t *testing.T) {
	var d Decoder
	var m Image
	rng := rand.New(rand.NewPCG(7, 8))
	files := testFiles(t, func(string) bool { return true })
	for i := 0; i < 3000; i++ {
		file := files[rng.IntN(len(files))]
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j <= rng.IntN(4); j++ {
			data[rng.IntN(len(data))] = uint8(rng.Uint32())
		}
		opts := Options{Scale: []int{1, 2, 4, 8}[rng.IntN(4)]}
		if rng.IntN(3) == 0 {
			opts.Region = image.Rect(rng.IntN(20), rng.IntN(20), 20+rng.IntN(40), 20+rng.IntN(40))
		}
		if err := decodeNoPanic(t, &d, &m, data, opts, file); err == nil {
			if len(m.Pix) != m.Width*m.Height*m.Channels {
				t.Fatalf("%s: %d bytes for %dx%dx%d", file, len(m.Pix), m.Width, m.Height, m.Channels)
			}
		}
	}
}

// edit returns a copy of data with the first occurrence of old replaced.
func edit(t *testing.T, data []byte, old, new string) []byte {
	t.Helper()
	i := bytes.Index(data, []byte(old))
	if i < 0 {
		t.Fatalf("%q not found", old)
	}
	return append(append(bytes.Clone(data[:i]), new...), data[i+len(old):]...)
}

// sofOffset returns the position of the SOF payload (after the length).
func sofOffset(t *testing.T, data []byte) int {
	t.Helper()
	for _, m := range []string{"\xff\xc0", "\xff\xc1", "\xff\xc2"} {
		if i := bytes.Index(data, []byte(m)); i >= 0 {
			return i + 4
		}
	}
	t.Fatal("no SOF")
	return 0
}

// TestMalformed checks that specific damage gives an error naming it.
func TestMalformed(t *testing.T) {
	base := readTestFile(t, "pil_420_q90.jpg")
	prog := readTestFile(t, "pil_420_q75_prog.jpg")
	rst := readTestFile(t, "cj_420_rst2b.jpg")
	set := func(data []byte, off int, b ...byte) []byte {
		out := bytes.Clone(data)
		copy(out[off:], b)
		return out
	}
	sof := sofOffset(t, base)
	cases := []struct {
		name string
		data []byte
		opts Options
		want string
	}{
		{"empty", nil, Options{}, "missing SOI"},
		{"png", []byte("\x89PNG\r\n\x1a\n"), Options{}, "missing SOI"},
		{"huge", set(base, sof+1, 0xff, 0xff, 0xff, 0xff), Options{}, "more than"},
		{"too short for frame", set(base, sof+1, 0x20, 0x00, 0x20, 0x00), Options{}, "too short"},
		{"zero width", set(base, sof+3, 0, 0), Options{}, "width is 0"},
		{"DNL height", set(base, sof+1, 0, 0), Options{}, "DNL"},
		{"12-bit", set(base, sof, 12), Options{}, "precision"},
		{"sampling 0", set(base, sof+7, 0x02), Options{}, "sampling factors"},
		{"sampling 5", set(base, sof+7, 0x52), Options{}, "sampling factors"},
		{"quant index", set(base, sof+8, 7), Options{}, "quantization table index"},
		{"undefined quant", set(base, sof+8, 3), Options{}, "not defined"},
		{"duplicate id", set(base, sof+9, base[sof+6]), Options{}, "repeated"},
		{"SOF3", edit(t, base, "\xff\xc0", "\xff\xc3"), Options{}, "lossless"},
		{"arithmetic", readTestFile(t, "cj_arith.jpg"), Options{}, "arithmetic"},
		{"two SOI", edit(t, base, "\xff\xd8", "\xff\xd8\xff\xd8"), Options{}, "duplicate SOI"},
		{"no EOI", base[:len(base)-2], Options{}, "EOI"},
		{"EOI before scan", []byte("\xff\xd8\xff\xd9"), Options{}, "before any scan"},
		{"unknown marker", edit(t, base, "\xff\xdb", "\xff\x02\x00\x02\xff\xdb"), Options{}, "unknown marker"},
		{"bad DHT", edit(t, base, "\xff\xc4\x00\x1f\x00\x00\x01\x05", "\xff\xc4\x00\x1f\x00\x03\x00\x03"), Options{}, "code lengths overflow"},
		{"wrong RST", edit(t, rst, "\xff\xd1", "\xff\xd3"), Options{}, "RST1"},
		{"AC table missing", edit(t, prog, "\xff\xc4", "\xff\xfe"), Options{}, "not defined"},
		{"scale 3", base, Options{Scale: 3}, "Scale 3"},
		{"region outside", base, Options{Region: image.Rect(500, 500, 600, 600)}, "outside"},
	}
	var d Decoder
	var m Image
	for _, c := range cases {
		err := decodeNoPanic(t, &d, &m, c.data, c.opts, c.name)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	var u UnsupportedError
	if err := d.Decode(readTestFile(t, "cj_arith.jpg"), Options{}, &m); !errors.As(err, &u) {
		t.Errorf("arithmetic coding: %v, want an UnsupportedError", err)
	}
}

// TestImageReuse checks that dst.Pix is reused when large enough.
func TestImageReuse(t *testing.T) {
	var d Decoder
	var m Image
	data := readTestFile(t, "pil_420_q90.jpg")
	if err := d.Decode(data, Options{}, &m); err != nil {
		t.Fatal(err)
	}
	p := &m.Pix[0]
	if err := d.Decode(data, Options{Scale: 2}, &m); err != nil {
		t.Fatal(err)
	}
	if &m.Pix[0] != p || m.Width != 49 || m.Height != 37 || len(m.Pix) != 49*37*3 {
		t.Errorf("second decode: %dx%d, %d bytes, reused %v", m.Width, m.Height, len(m.Pix), &m.Pix[0] == p)
	}
	if err := d.Decode(data, Options{}, nil); err == nil {
		t.Error("nil destination: no error")
	}
}

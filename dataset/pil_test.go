package dataset

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The references of the photo pipeline: Pillow 9.4 and torchvision 0.14 (Debian's), run on
// the committed fixtures (tools/make_photo_fixtures.py) or on 8-bit pictures the test
// writes raw. One Python process computes every job; each job is a starting picture and a
// list of steps, each step a torchvision or Pillow call.
const pilReferenceScript = `
import sys, json, math, numpy as np, torch
from PIL import Image, ImageOps
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode as IM
from torchvision.transforms.autoaugment import _apply_op

INTERP = {'bilinear': IM.BILINEAR, 'bicubic': IM.BICUBIC}
PILF = {'bilinear': Image.BILINEAR, 'bicubic': Image.BICUBIC}

def load(spec):
    if 'path' in spec:
        im = Image.open(spec['path'])
        if spec.get('exif'):
            im = ImageOps.exif_transpose(im)
        return im.convert(spec['mode'])
    c, h, w = spec['c'], spec['h'], spec['w']
    a = np.fromfile(spec['raw'], dtype=np.uint8).reshape(c, h, w)
    if c == 1:
        return Image.fromarray(a[0], 'L')
    return Image.fromarray(np.ascontiguousarray(a.transpose(1, 2, 0)), 'RGB')

def step(im, s):
    op, a = s[0], s[1:]
    if op == 'resize':        # [w, h, interp]
        return TF.resize(im, [a[1], a[0]], INTERP[a[2]])
    if op == 'resize_short':  # [size, interp]: torchvision's Resize(int)
        return TF.resize(im, a[0], INTERP[a[1]])
    if op == 'center_crop':   # [h, w]
        return TF.center_crop(im, [a[0], a[1]])
    if op == 'resized_crop':  # [top, left, h, w, outh, outw, interp]
        return TF.resized_crop(im, a[0], a[1], a[2], a[3], [a[4], a[5]], INTERP[a[6]])
    if op == 'letterbox':     # [W, H, interp]: fit inside W x H keeping the aspect ratio, black around
        W, H = a[0], a[1]
        w, h = im.size
        if w * H > h * W:
            nw, nh = W, min(max(round(h * W / w), 1), H)
        else:
            nw, nh = min(max(round(w * H / h), 1), W), H
        small = im.resize((nw, nh), PILF[a[2]])
        out = Image.new(im.mode, (W, H), 0)
        out.paste(small, ((W - nw) // 2, (H - nh) // 2))
        return out
    if op == 'cover':         # [W, H, crop_pct, interp]: the smallest aspect-preserving size covering
        W, H, cp = a[0], a[1], a[2]  # (floor(W/cp), floor(H/cp)), then the centre W x H
        sw, sh = math.floor(W / cp), math.floor(H / cp)
        w, h = im.size
        if w * sh > h * sw:
            nw, nh = int(sh * w / h), sh
        else:
            nw, nh = sw, int(sw * h / w)
        return TF.center_crop(TF.resize(im, [nh, nw], INTERP[a[3]]), [H, W])
    if op == 'pad_crop':      # [pad, top, left, h, w]: RandomCrop(padding=pad) at that offset
        return TF.crop(TF.pad(im, a[0], fill=0), a[1], a[2], a[3], a[4])
    if op == 'hflip': return TF.hflip(im)
    if op == 'vflip': return TF.vflip(im)
    if op == 'rotate': return TF.rotate(im, a[0])
    if op == 'brightness': return TF.adjust_brightness(im, a[0])
    if op == 'contrast': return TF.adjust_contrast(im, a[0])
    if op == 'saturation': return TF.adjust_saturation(im, a[0])
    if op == 'hue': return TF.adjust_hue(im, a[0])
    if op == 'sharpness': return TF.adjust_sharpness(im, a[0])
    if op == 'posterize': return TF.posterize(im, a[0])
    if op == 'solarize': return TF.solarize(im, a[0])
    if op == 'autocontrast': return TF.autocontrast(im)
    if op == 'equalize': return TF.equalize(im)
    if op == 'trivial':       # [op name, magnitude]
        return _apply_op(im, a[0], a[1], interpolation=IM.NEAREST, fill=None)
    raise ValueError(op)

for job in json.load(open(sys.argv[1])):
    if job.get('rrc_draws'):
        W, H, n = job['rrc_draws']
        torch.manual_seed(job['seed'])
        img = torch.empty(1, H, W)
        out = [T.RandomResizedCrop.get_params(img, job['scale'], job['ratio']) for _ in range(n)]
        np.asarray(out, dtype='<i4').tofile(job['out'])
        continue
    if job.get('erase_draws'):
        H, W, n = job['erase_draws']
        torch.manual_seed(job['seed'])
        img = torch.zeros(3, H, W)
        out = [T.RandomErasing.get_params(img, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=[0])[:4] for _ in range(n)]
        np.asarray(out, dtype='<i4').tofile(job['out'])
        continue
    if job.get('beta_draws'):
        torch.manual_seed(0)
        a = job['alpha']
        out = [float(torch._sample_dirichlet(torch.tensor([a, a], dtype=torch.float64))[0]) for _ in range(job['beta_draws'])]
        np.asarray(out, dtype='<f8').tofile(job['out'])
        continue
    im = load(job['in'])
    for s in job.get('steps') or []:
        im = step(im, s)
    a = np.asarray(im, dtype=np.uint8)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    np.ascontiguousarray(a).tofile(job['out'])
`

// pilJob is one reference computation.
type pilJob struct {
	In    map[string]any `json:"in,omitempty"`
	Steps [][]any        `json:"steps,omitempty"`
	Out   string         `json:"out"`
	// Parameter draws instead of a picture.
	RRCDraws   []int      `json:"rrc_draws,omitempty"`
	EraseDraws []int      `json:"erase_draws,omitempty"`
	Seed       int        `json:"seed"`
	BetaDraws  int        `json:"beta_draws,omitempty"`
	Alpha      float64    `json:"alpha,omitempty"`
	Scale      [2]float64 `json:"scale,omitempty"`
	Ratio      [2]float64 `json:"ratio,omitempty"`

	name  string
	check func(t *testing.T, out []byte)
}

// runPIL runs the jobs through the reference script and then each job's check.
func runPIL(t *testing.T, jobs []*pilJob) {
	t.Helper()
	needTorch(t)
	dir := t.TempDir()
	for i, j := range jobs {
		j.Out = filepath.Join(dir, fmt.Sprintf("job%d.out", i))
	}
	spec, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(dir, "jobs.json")
	if err := os.WriteFile(specPath, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	runPython(t, pilReferenceScript, specPath)
	for _, j := range jobs {
		t.Run(j.name, func(t *testing.T) {
			out, err := os.ReadFile(j.Out)
			if err != nil {
				t.Fatal(err)
			}
			j.check(t, out)
		})
	}
}

const photos = "testdata/photos"

// fileInput starts a job from a fixture: Pillow opens it, applies the EXIF orientation,
// converts it to mode (RGB or L).
func fileInput(path, mode string) map[string]any {
	return map[string]any{"path": path, "exif": true, "mode": mode}
}

// rawInput starts a job from a picture written raw.
func rawInput(t *testing.T, p *picture) map[string]any {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "pic*.raw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(p.pix[:p.c*p.w*p.h]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return map[string]any{"raw": f.Name(), "c": p.c, "h": p.h, "w": p.w}
}

// diffStats is the largest and the mean absolute difference of two 8-bit arrays.
func diffStats(a, b []uint8) (maxd int, mean float64) {
	var sum int
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		sum += d
		maxd = max(maxd, d)
	}
	return maxd, float64(sum) / float64(max(len(a), 1))
}

// want8 compares a picture with the reference's bytes: the same shape (c, h, w), at most
// tol grey levels apart anywhere.
func want8(t *testing.T, got *picture, c, h, w int, ref []byte, tol int) {
	t.Helper()
	if got.c != c || got.h != h || got.w != w {
		t.Fatalf("got %dx%dx%d, reference %dx%dx%d", got.c, got.h, got.w, c, h, w)
	}
	if len(ref) != c*h*w {
		t.Fatalf("reference has %d bytes, want %d", len(ref), c*h*w)
	}
	maxd, mean := diffStats(got.pix[:c*h*w], ref)
	t.Logf("max |diff| %d, mean %.4f grey levels", maxd, mean)
	if maxd > tol {
		t.Fatalf("max |diff| %d grey levels (mean %.4f), want at most %d", maxd, mean, tol)
	}
}

func decodeFixture(t *testing.T, path string, gray bool) *picture {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d decoder
	p, err := d.decodeWhole(data, gray)
	if err != nil {
		t.Fatal(err)
	}
	out := *p
	out.pix = slices.Clone(p.pix[:p.c*p.w*p.h])
	return &out
}

// The lossless fixtures, whose decoded pixels must equal Pillow's.
var losslessFixtures = []string{
	"face_97x131.png", "face_rgba_200x150.png", "face_pal_160x120.png", "face_pal_120x90.gif",
	"ascent_gray_200x300.png", "face_120x90.bmp", "face_120x90.tiff", "face_lossless_120x90.webp",
}

// TestDecodeMatchesPillow decodes every fixture as Pillow's Image.open, exif_transpose and
// convert do, in colour and grey: lossless formats exactly, JPEG within the bound the JPEG
// decoder documents, lossy WebP and 16-bit PNG as measured (they differ by design: see
// the messages).
func TestDecodeMatchesPillow(t *testing.T) {
	type fixture struct {
		file string
		tol  int
	}
	var fixtures []fixture
	for _, f := range losslessFixtures {
		fixtures = append(fixtures, fixture{f, 0})
	}
	for _, f := range []string{"face_640x480.jpg", "face_360x640.jpg", "face_500x281.jpg", "face_444_300x225.jpg",
		"face_422_300x225.jpg", "face_prog_320x240.jpg", "ascent_gray_300x200.jpg", "face_cmyk_160x120.jpg"} {
		fixtures = append(fixtures, fixture{f, jpegTolerance})
	}
	for k := 1; k <= 8; k++ {
		fixtures = append(fixtures, fixture{fmt.Sprintf("exif/orient%d.jpg", k), jpegTolerance})
	}
	// Lossy WebP: x/image/webp replicates the chroma samples where libwebp (Pillow's)
	// interpolates them, and rounds its YUV conversion differently: measured 30 grey
	// levels at most, 6 on average, on this fixture.
	fixtures = append(fixtures, fixture{"face_lossy_120x90.webp", 32})
	var jobs []*pilJob
	for _, f := range fixtures {
		for _, mode := range []string{"RGB", "L"} {
			path := filepath.Join(photos, f.file)
			jobs = append(jobs, &pilJob{
				In: fileInput(path, mode), name: f.file + "/" + mode,
				check: func(t *testing.T, ref []byte) {
					got := decodeFixture(t, path, mode == "L")
					c := 3
					if mode == "L" {
						c = 1
					}
					if got.c == 1 && c == 3 { // a grey file: Pillow's RGB repeats it
						g := *got
						got = &picture{c: 3, w: g.w, h: g.h, pix: slices.Concat(g.pix, g.pix, g.pix)}
					}
					tol := f.tol
					if mode == "L" && tol > 0 {
						tol++ // luma of colours that differ by tol
					}
					want8(t, got, c, got.h, got.w, ref, tol)
				},
			})
		}
	}
	runPIL(t, jobs)
}

// Pillow reads 16-bit PNGs differently: grey ones as 32-bit integers that convert("L")
// clips at 255 (most of a photograph turns white), RGB ones by their high bytes. The
// toolkit keeps the high byte of both; this test pins what Pillow does, so that the README's
// statement stays true.
func TestDecode16BitPNG(t *testing.T) {
	var jobs []*pilJob
	rgb := filepath.Join(photos, "face_16_120x90.png")
	jobs = append(jobs, &pilJob{In: fileInput(rgb, "RGB"), name: "rgb16", check: func(t *testing.T, ref []byte) {
		want8(t, decodeFixture(t, rgb, false), 3, 90, 120, ref, 0)
	}})
	gray := filepath.Join(photos, "ascent_16_160x120.png")
	jobs = append(jobs, &pilJob{In: fileInput(gray, "L"), name: "gray16", check: func(t *testing.T, ref []byte) {
		got := decodeFixture(t, gray, true)
		white := 0
		for _, v := range ref {
			if v == 255 {
				white++
			}
		}
		if white < len(ref)*9/10 {
			t.Fatalf("Pillow's convert('L') of a 16-bit grey PNG left %d of %d samples below 255; the README says it clips them", len(ref)-white, len(ref))
		}
		if got.c != 1 || got.w != 160 || got.h != 120 {
			t.Fatalf("got %dx%dx%d", got.c, got.h, got.w)
		}
	}})
	runPIL(t, jobs)
}

// evalCase is a deterministic transform checked against torchvision's.
type evalCase struct {
	file          string
	resize        string
	cropPct       float64
	interp        string
	h, w          int
	gray          bool
	torchvisionOp func(h, w int) [][]any
}

// TestResizeMatchesTorchvision runs every resize mode and interpolation through the
// pipeline (no normalisation) on lossless fixtures and compares with torchvision's
// transforms on the PIL image: Resize((h, w)) for squish, Resize(int(size/crop_pct)) +
// CenterCrop for crop, and a Pillow resize pasted centred on black for pad.
func TestResizeMatchesTorchvision(t *testing.T) {
	var jobs []*pilJob
	files := []string{"face_97x131.png", "face_rgba_200x150.png", "ascent_gray_200x300.png", "face_120x90.bmp"}
	sizes := [][2]int{{224, 224}, {64, 48}, {37, 37}, {300, 150}}
	for fi, file := range files {
		for si, sz := range sizes {
			for _, interp := range Interpolations {
				for _, mode := range ResizeModes {
					cropPcts := []float64{0}
					if mode == ResizeCrop {
						cropPcts = []float64{0, 1, 0.95}
					}
					for _, cp := range cropPcts {
						h, w := sz[0], sz[1]
						if mode == ResizeCrop && h != w && cp != 0 {
							continue // torchvision's Resize(int) + CenterCrop is defined for square inputs
						}
						gray := (fi+si)%3 == 2
						jobs = append(jobs, resizeJob(t, file, mode, cp, interp, h, w, gray))
					}
				}
			}
		}
	}
	runPIL(t, jobs)
}

func resizeJob(t *testing.T, file, mode string, cropPct float64, interp string, h, w int, gray bool) *pilJob {
	path := filepath.Join(photos, file)
	var steps [][]any
	switch mode {
	case ResizeSquish:
		steps = [][]any{{"resize", w, h, interp}}
	case ResizeCrop:
		cp := cropPct
		if cp == 0 {
			cp = DefaultCropPct
		}
		if h == w {
			steps = [][]any{{"resize_short", int(math.Floor(float64(h) / cp)), interp}, {"center_crop", h, w}}
		} else {
			// Not square: covering (floor(h/cp), floor(w/cp)) keeping the aspect ratio,
			// then the centre. torchvision has no single transform for it; with the
			// picture's aspect ratio known, Resize(int) on the right side is the same.
			steps = [][]any{{"cover", w, h, cp, interp}}
		}
	case ResizePad:
		steps = [][]any{{"letterbox", w, h, interp}}
	}
	c, pmode := 3, "RGB"
	if gray {
		c, pmode = 1, "L"
	}
	name := fmt.Sprintf("%s/%s%v/%s/%dx%d/c%d", file, mode, cropPct, interp, w, h, c)
	return &pilJob{
		In: fileInput(path, pmode), Steps: steps, name: name,
		check: func(t *testing.T, ref []byte) {
			p := Preprocess{Mode: ModeNone, Channels: c, Height: h, Width: w, Resize: mode, CropPct: cropPct, Interpolation: interp}
			got := runEval(t, p, path)
			want8(t, got, c, h, w, ref, 0)
		},
	}
}

// runEval runs the evaluation pipeline of p on a file and returns the 8-bit result (p's mode
// must be none: the floats are the 8-bit values).
func runEval(t *testing.T, p Preprocess, path string) *picture {
	t.Helper()
	tr, err := p.compile(Augment{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, p.Size())
	var s scratch
	if err := tr.run(dst, input{data: data}, 0, false, false, &s); err != nil {
		t.Fatal(err)
	}
	out := &picture{c: p.Channels, w: p.Width, h: p.Height, pix: make([]uint8, len(dst))}
	for i, v := range dst {
		if v != float32(math.Round(float64(v))) || v < 0 || v > 255 {
			t.Fatalf("value %v at %d is not an 8-bit value", v, i)
		}
		out.pix[i] = uint8(v)
	}
	return out
}

// jpegTolerance is how far the JPEG decoder's pixels may be from libjpeg-turbo's.
const jpegTolerance = 0

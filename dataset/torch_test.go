package dataset

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// The torch reference runs once per test binary (importing torch takes seconds): the test
// writes every case's inputs and a job list, one Python process computes all the outputs.
const torchReferenceScript = `
import sys, json, numpy as np, torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

def normalise(x, mode, c, mean, std):
    if mode == 'torch':
        return (x / 255 - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    if mode == 'caffe':
        return x.flip(0) - torch.tensor([103.939, 116.779, 123.68]).view(3, 1, 1)
    if mode == 'tf':
        return x / 127.5 - 1
    return x

for job in json.load(open(sys.argv[1])):
    if job['op'] == 'resize':
        c, h, w = job['shape']
        x = torch.from_numpy(np.fromfile(job['in'], dtype='<f4').reshape(1, c, h, w))
        y = F.interpolate(x, size=tuple(job['size']), mode='bilinear', align_corners=False, antialias=False)[0]
    elif job['op'] == 'pipeline':
        # PIL decodes and converts; torch resizes (float) and normalises.
        c = job['c']
        im = Image.open(job['path']).convert('L' if c == 1 else 'RGB')
        x = torch.from_numpy(np.asarray(im, dtype=np.float32).copy())
        x = x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1)
        # (PIL's convert('RGB') of a grey image replicates it, as we do.)
        x = F.interpolate(x.unsqueeze(0), size=tuple(job['size']), mode='bilinear', align_corners=False, antialias=False)[0]
        y = normalise(x, job['mode'], c, job.get('mean'), job.get('std'))
    elif job['op'] == 'augment':
        # torchvision on a PIL image of the resized size: RandomCrop(padding=P) with the given
        # offsets, then RandomHorizontalFlip, then ToTensor and Normalize.
        im = Image.open(job['path']).convert('RGB')
        p = job['pad']
        im = TF.pad(im, p, fill=0)
        im = TF.crop(im, job['dy'], job['dx'], job['h'], job['w'])
        if job['flip']:
            im = TF.hflip(im)
        y = TF.normalize(TF.to_tensor(im), job.get('mean'), job.get('std'))
    y.numpy().astype('<f4').tofile(job['out'])
`

// resizeCases are (channels, h, w) -> (outH, outW): up, down, mixed, identity, integer and
// non-integer ratios, single rows and columns.
var resizeCases = []struct{ c, h, w, oh, ow int }{
	{1, 28, 28, 32, 32},
	{3, 28, 28, 32, 32},
	{3, 13, 17, 5, 7},
	{3, 7, 9, 20, 31},
	{1, 10, 10, 10, 10},
	{2, 30, 40, 15, 20},
	{3, 64, 48, 224, 224},
	{3, 300, 257, 224, 224},
	{3, 480, 640, 224, 224},
	{1, 1, 5, 4, 3},
	{1, 5, 1, 9, 2},
	{1, 100, 3, 7, 11},
}

type torchJob struct {
	Op    string    `json:"op"`
	In    string    `json:"in,omitempty"`
	Out   string    `json:"out"`
	Shape []int     `json:"shape,omitempty"`
	Size  []int     `json:"size,omitempty"`
	Path  string    `json:"path,omitempty"`
	Mode  string    `json:"mode,omitempty"`
	C     int       `json:"c,omitempty"`
	Mean  []float64 `json:"mean,omitempty"`
	Std   []float64 `json:"std,omitempty"`
	Pad   int       `json:"pad,omitempty"`
	DX    int       `json:"dx"`
	DY    int       `json:"dy"`
	H     int       `json:"h,omitempty"`
	W     int       `json:"w,omitempty"`
	Flip  bool      `json:"flip"`

	name  string
	check func(t *testing.T, want []float32)
}

// TestTorchReference checks, within 1e-4 on values up to 255:
//   - ResizeBilinear against F.interpolate(bilinear, align_corners=False, antialias=False);
//   - whole images through Preprocess.Apply against PIL decoding and colour conversion plus
//     torch resizing and normalisation (PNG decoding is lossless: both see the same pixels);
//   - augmentation against torchvision's pad, crop, hflip, to_tensor and normalize on PIL
//     images, given the crop offsets and flip our draw made.
func TestTorchReference(t *testing.T) {
	needTorch(t)
	dir := t.TempDir()
	var jobs []*torchJob
	r := rand.New(rand.NewPCG(7, 7))

	for i, tc := range resizeCases {
		x := make([]float32, tc.c*tc.h*tc.w)
		for k := range x {
			x[k] = float32(r.IntN(256))
			if k%2 == 1 {
				x[k] = r.Float32() * 255
			}
		}
		in := filepath.Join(dir, fmt.Sprintf("resize%d.in", i))
		writeF32(t, in, x)
		tc := tc
		jobs = append(jobs, &torchJob{
			Op: "resize", In: in, Shape: []int{tc.c, tc.h, tc.w}, Size: []int{tc.oh, tc.ow},
			name: fmt.Sprintf("resize/%dx%dx%d_to_%dx%d", tc.c, tc.h, tc.w, tc.oh, tc.ow),
			check: func(t *testing.T, want []float32) {
				got, err := ResizeBilinear(x, tc.c, tc.h, tc.w, tc.oh, tc.ow)
				if err != nil {
					t.Fatal(err)
				}
				compareRef(t, got, want)
			},
		})
	}

	rgb := filepath.Join(dir, "rgb.png")
	gray := filepath.Join(dir, "gray.png")
	writePNG(t, rgb, randomRGB(3, 37, 29))
	writePNG(t, gray, randomGray(4, 28, 28))
	for _, tc := range []struct {
		file, mode string
		c, h, w    int
		mean, std  []float64
	}{
		{rgb, ModeTorch, 3, 32, 32, nil, nil},
		{rgb, ModeTorch, 3, 224, 224, []float64{0.5, 0.4, 0.3}, []float64{0.2, 0.3, 0.25}},
		{rgb, ModeCaffe, 3, 24, 50, nil, nil},
		{rgb, ModeTF, 3, 29, 37, nil, nil},
		{rgb, ModeNone, 1, 16, 16, nil, nil}, // luma as PIL's convert("L")
		{rgb, ModeTorch, 1, 40, 40, []float64{0.5}, []float64{0.25}},
		{gray, ModeTorch, 1, 32, 32, []float64{0.286}, []float64{0.353}},
		{gray, ModeTorch, 3, 32, 32, []float64{0.286}, []float64{0.353}}, // replicated
		{gray, ModeCaffe, 3, 32, 32, nil, nil},
		{gray, ModeNone, 1, 20, 13, nil, nil},
	} {
		p := Preprocess{Mode: tc.mode, Channels: tc.c, Height: tc.h, Width: tc.w, Mean: tc.mean, Std: tc.std}
		j := &torchJob{Op: "pipeline", Path: tc.file, Mode: tc.mode, C: tc.c, Size: []int{tc.h, tc.w}}
		if tc.mode == ModeTorch {
			j.Mean, j.Std = broadcast(tc.mean, ImageNetMean, tc.c), broadcast(tc.std, ImageNetStd, tc.c)
		}
		j.name = fmt.Sprintf("pipeline/%s_%s_%dx%dx%d", filepath.Base(tc.file), tc.mode, tc.c, tc.h, tc.w)
		file := tc.file
		j.check = func(t *testing.T, want []float32) {
			got, err := p.Apply(decodeForTest(t, file))
			if err != nil {
				t.Fatal(err)
			}
			compareRef(t, got, want)
		}
		jobs = append(jobs, j)
	}

	// Augmentation: a 20x24 RGB image (already the model's size), pad 4, several draws.
	aug := filepath.Join(dir, "aug.png")
	augImg := randomRGB(9, 24, 20)
	writePNG(t, aug, augImg)
	p := Preprocess{Mode: ModeTorch, Channels: 3, Height: 20, Width: 24}
	tr, err := p.compile(Augment{HFlip: true, PadCrop: 4})
	if err != nil {
		t.Fatal(err)
	}
	draws := []augDraw{{0, 0, false}, {8, 8, true}, {3, 6, true}, {4, 4, true}, {7, 1, false}}
	for k := uint64(0); len(draws) < 12; k++ {
		draws = append(draws, tr.draw(k))
	}
	for i, d := range draws {
		jobs = append(jobs, &torchJob{
			Op: "augment", Path: aug, Pad: 4, DX: d.dx, DY: d.dy, Flip: d.flip, H: 20, W: 24,
			Mean: ImageNetMean, Std: ImageNetStd,
			name: fmt.Sprintf("augment/%d_dx%d_dy%d_flip%v", i, d.dx, d.dy, d.flip),
			check: func(t *testing.T, want []float32) {
				got := make([]float32, p.Size())
				var s scratch
				tr.apply(got, augImg, &s, d)
				compareRef(t, got, want)
			},
		})
	}

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
	runPython(t, torchReferenceScript, specPath)
	for _, j := range jobs {
		t.Run(j.name, func(t *testing.T) { j.check(t, readF32(t, j.Out)) })
	}
}

func broadcast(v, def []float64, c int) []float64 {
	if v == nil {
		v = def
	}
	out := make([]float64, c)
	for i := range out {
		out[i] = v[min(i, len(v)-1)]
	}
	return out
}

func compareRef(t *testing.T, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d values, reference %d", len(got), len(want))
	}
	if d, at := maxAbsDiff(got, want); d > 1e-4 {
		t.Fatalf("max |diff| %g at %d (got %v, reference %v)", d, at, got[at], want[at])
	} else if testing.Verbose() {
		t.Logf("max |diff| vs reference: %g", d)
	}
}

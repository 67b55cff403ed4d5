package crosscheck

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"toolkit/dataset"
	"toolkit/extract"
	"toolkit/finetune"
	"toolkit/npy"
	"toolkit/onnx"
)

// TestExtractAgreesWithORT extracts features of 45 demo images (batches of 8, the last
// short) with toolkit extract's library, from the demo recipe (its base file, its
// normalisation) and from the parity classifier with its head cut off, and runs ONNX
// Runtime on the same inputs, the images in files.txt's order prepared with the
// extractor's preprocessing: on the demo's base file itself, and on the cut classifier
// written out. The features agree within 1e-5 relative.
func TestExtractAgreesWithORT(t *testing.T) {
	ortRunner(t)
	tmp := t.TempDir()
	data := filepath.Join(tmp, "images")
	copyDemoImages(t, "../data/fmnist-5to9/test", data, 9)
	cfg, err := finetune.LoadConfig("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base, pre, err := finetune.Base(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	fromRecipe, err := extract.New("../config.yaml", base, pre)
	if err != nil {
		t.Fatal(err)
	}
	const classifier = "../testdata/parity/vgg_classifier_opset13/model.onnx"
	cut, err := extract.Load(classifier)
	if err != nil {
		t.Fatal(err)
	}
	cutModel, err := onnx.Cut(readIR(t, classifier), cut.Output)
	if err != nil {
		t.Fatal(err)
	}
	cutFile := filepath.Join(tmp, "classifier-base.onnx")
	if err := onnx.Write(cutFile, cutModel); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		e     *extract.Extractor
		model string // what ONNX Runtime runs
	}{{"recipe", fromRecipe, cfg.Model.ONNX}, {"classifier", cut, cutFile}}
	var jobs []ortJob
	var got []*npy.Array
	for _, c := range cases {
		out := filepath.Join(tmp, c.name)
		res, err := extract.Extract(context.Background(), c.e, data, out, extract.Options{BatchSize: 8})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, readNPY(t, res.Features))
		list, err := os.ReadFile(res.Files)
		if err != nil {
			t.Fatal(err)
		}
		var files []string
		for _, f := range strings.Split(strings.TrimSuffix(string(list), "\n"), "\n") {
			files = append(files, filepath.Join(data, f))
		}
		src, err := dataset.OpenFiles(files, dataset.Options{})
		if err != nil {
			t.Fatal(err)
		}
		l, err := dataset.NewLoader(src, dataset.LoaderOptions{BatchSize: len(files), Preprocess: c.e.Preprocess})
		if err != nil {
			t.Fatal(err)
		}
		in := filepath.Join(tmp, c.name+"-input.npy")
		for b, err := range l.Epoch(context.Background(), 0) {
			if err != nil {
				t.Fatal(err)
			}
			p := c.e.Preprocess
			writeNPY(t, in, &npy.Array{Shape: []int{b.N, p.Channels, p.Height, p.Width}, Data: b.Images})
		}
		jobs = append(jobs, ortJob{c.model, in, filepath.Join(tmp, c.name+"-ort.npy")})
	}
	stderr := runORT(t, jobs)
	var w worst
	for i, c := range cases {
		want := readORT(t, jobs[i], stderr)
		if got[i].Shape[0] != 45 {
			t.Errorf("%s: %d images' features, want 45", c.name, got[i].Shape[0])
		}
		compare(t, &w, c.name, got[i], want, 1e-5)
	}
	w.log(t, "ONNX Runtime")
}

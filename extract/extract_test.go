package extract

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"toolkit/finetune"
	"toolkit/npy"
	"toolkit/shard"
)

// imageFolder makes a folder of perClass demo images of two classes, in class
// subfolders.
func imageFolder(t *testing.T, perClass int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "images")
	for _, class := range []string{"5_sandal", "8_bag"} {
		from := filepath.Join("../data/fmnist-5to9/test", class)
		files, err := os.ReadDir(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, class), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files[:perClass] {
			raw, err := os.ReadFile(filepath.Join(from, f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, class, f.Name()), raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func readOutputs(t *testing.T, out string) (features, files []byte) {
	t.Helper()
	features, err := os.ReadFile(filepath.Join(out, FeaturesFile))
	if err != nil {
		t.Fatal(err)
	}
	files, err = os.ReadFile(filepath.Join(out, FilesFile))
	if err != nil {
		t.Fatal(err)
	}
	return features, files
}

// TestShardsMergeToOneProcess extracts the demo base's features of 60 images in batches
// of 8 (8 batches) in one process, and as 3 and 11 shards (three of them empty)
// merged: features.npy and files.txt are one process's, byte for byte.
func TestShardsMergeToOneProcess(t *testing.T) {
	dir := imageFolder(t, 30)
	e, err := Load("../models/fmnist-vgg/base.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.Shape, []int{128, 4, 4}) || len(e.Notes) != 1 || !strings.Contains(e.Notes[0], "mode torch") {
		t.Errorf("the demo base: features %v, notes %v", e.Shape, e.Notes)
	}
	opts := Options{BatchSize: 8}
	one := t.TempDir()
	res, err := Extract(context.Background(), e, dir, one, opts)
	if err != nil {
		t.Fatal(err)
	}
	wantFeatures, wantFiles := readOutputs(t, one)
	a, err := npy.ReadFile(res.Features)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(wantFiles), "\n"), "\n")
	if res.Images != 60 || !slices.Equal(a.Shape, []int{60, 128, 4, 4}) || len(lines) != 60 || lines[0] != "5_sandal/"+nthFile(t, "5_sandal", 1) || lines[59] != "8_bag/"+nthFile(t, "8_bag", 30) {
		t.Fatalf("%d images, features %v, files.txt %q ... %q", res.Images, a.Shape, lines[0], lines[len(lines)-1])
	}
	for _, count := range []int{3, 11} {
		parts := t.TempDir()
		for i := range count {
			if _, err := ExtractShard(context.Background(), e, dir, opts, shard.Spec{Index: i, Count: count}, parts); err != nil {
				t.Fatal(err)
			}
		}
		merged := t.TempDir()
		if _, err := Merge(parts, e.Name, dir, merged, opts); err != nil {
			t.Fatal(err)
		}
		features, files := readOutputs(t, merged)
		if !slices.Equal(features, wantFeatures) || !slices.Equal(files, wantFiles) {
			t.Errorf("%d shards: the merged outputs differ from one process's", count)
		}
	}
}

// nthFile is the name of the n-th file of a demo class.
func nthFile(t *testing.T, class string, n int) string {
	files, err := os.ReadDir(filepath.Join("../data/fmnist-5to9/test", class))
	if err != nil {
		t.Fatal(err)
	}
	return files[n-1].Name()
}

// TestRecipeAndClassifier checks the two other ways to an extractor: a recipe's base
// and preprocessing (the demo's: the same base, with its normalisation), and a
// classifier whose head is cut off (the parity fixture: the features are what its
// Flatten reads).
func TestRecipeAndClassifier(t *testing.T) {
	cfg, err := finetune.LoadConfig("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, pre, err := finetune.Base(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New("../config.yaml", m, pre)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.Shape, []int{128, 4, 4}) || e.Preprocess.Mean[0] != cfg.Data.Preprocess.Mean[0] || len(e.Notes) != 0 {
		t.Errorf("the demo recipe: features %v, preprocessing %+v, notes %v", e.Shape, e.Preprocess, e.Notes)
	}
	c, err := Load("../testdata/parity/vgg_classifier_opset13/model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Shape, []int{8, 4, 4}) || len(c.Notes) != 2 || !strings.Contains(c.Notes[0], "classifier is cut off") {
		t.Errorf("the classifier: features %v of %q, notes %v", c.Shape, c.Output, c.Notes)
	}
}

// TestBadImages: a file that does not decode fails the extraction, naming it, or with
// skip is left out of files.txt and listed.
func TestBadImages(t *testing.T) {
	dir := imageFolder(t, 3)
	bad := filepath.Join(dir, "8_bag", "broken.png")
	if err := os.WriteFile(bad, []byte("not a picture"), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := Load("../models/fmnist-vgg/base.onnx")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := Extract(context.Background(), e, dir, out, Options{}); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "--on-bad-image skip") {
		t.Errorf("a broken file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, FeaturesFile)); err == nil {
		t.Error("a failed extraction wrote features.npy")
	}
	res, err := Extract(context.Background(), e, dir, out, Options{OnBadImage: "skip"})
	if err != nil {
		t.Fatal(err)
	}
	_, files := readOutputs(t, out)
	if res.Images != 6 || len(res.Skipped) != 1 || res.Skipped[0].File != bad || strings.Contains(string(files), "broken") {
		t.Errorf("skip: %d images, skipped %v, files.txt:\n%s", res.Images, res.Skipped, files)
	}
	if _, err := Extract(context.Background(), e, filepath.Join(dir, "none"), out, Options{}); err == nil || !strings.Contains(err.Error(), "none") {
		t.Errorf("a missing folder: %v", err)
	}

}

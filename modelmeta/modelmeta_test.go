package modelmeta

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"toolkit/dataset"
	"toolkit/internal/testref"
	"toolkit/onnx"
)

// TestSetGet writes the metadata into a model file and reads it back, with the ONNX
// library's own reader as the reference for what the file holds: the model's other
// entries kept, the toolkit's replaced rather than repeated.
func TestSetGet(t *testing.T) {
	m, err := onnx.Read("../models/fmnist-vgg/base.onnx")
	if err != nil {
		t.Fatal(err)
	}
	m.Metadata = append(m.Metadata, onnx.MetadataEntry{Key: "author", Value: "someone"}, onnx.MetadataEntry{Key: Classes, Value: `["old"]`})
	pre := dataset.Preprocess{Mode: dataset.ModeTorch, Channels: 3, Height: 32, Width: 32, Mean: []float64{0.5}, Std: []float64{0.25}}
	want := Meta{Classes: []string{"cat", "dog"}, Preprocess: &pre, Recipe: []byte("seed: 1\n"), Task: TaskMultilabel, Thresholds: []float64{0.25, 0.625}}
	if err := Set(m, want); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := onnx.Write(path, m); err != nil {
		t.Fatal(err)
	}
	back, err := onnx.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Get(back)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Classes, want.Classes) || string(got.Recipe) != string(want.Recipe) || got.Task != want.Task || !slices.Equal(got.Thresholds, want.Thresholds) ||
		got.Preprocess == nil || got.Preprocess.Mode != pre.Mode || got.Preprocess.Height != 32 || !slices.Equal(got.Preprocess.Std, pre.Std) {
		t.Errorf("read back %+v, want %+v", got, want)
	}
	py := "/usr/bin/python3"
	out, err := exec.Command(py, "-c", `import onnx, sys
m = onnx.load(sys.argv[1])
for p in m.metadata_props: print(p.key + "=" + p.value)`, path).Output()
	if err != nil {
		testref.Missing(t, "the onnx reference skipped: %s cannot load onnx (install Debian's python3-onnx): %v", py, err)
		return
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	wantLines := []string{"author=someone", `toolkit.classes=["cat","dog"]`, "toolkit.preprocess=", "toolkit.recipe=seed: 1", "", "toolkit.task=multilabel", "toolkit.thresholds=[0.25,0.625]"}
	if len(lines) != len(wantLines) {
		t.Fatalf("onnx reads %q", lines)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, wantLines[i]) {
			t.Errorf("entry %d: onnx reads %q, want %q...", i, l, wantLines[i])
		}
	}
}

// TestGetErrors checks that a malformed entry is an error naming its key, and that a
// model without the toolkit's entries has none.
func TestGetErrors(t *testing.T) {
	if m, err := Get(&onnx.Model{}); err != nil || m.Classes != nil || m.Preprocess != nil || m.Recipe != nil {
		t.Errorf("no metadata: %+v, %v", m, err)
	}
	for _, key := range []string{Classes, Preprocess, Thresholds} {
		_, err := Get(&onnx.Model{Metadata: []onnx.MetadataEntry{{Key: key, Value: "{not json"}}})
		if err == nil || !strings.Contains(err.Error(), "metadata "+key+":") {
			t.Errorf("%s: error %v", key, err)
		}
	}
	for _, c := range []struct {
		entries []onnx.MetadataEntry
		want    string
	}{
		{[]onnx.MetadataEntry{{Key: Task, Value: "detection"}}, `metadata toolkit.task: unknown task "detection"`},
		{[]onnx.MetadataEntry{{Key: Classes, Value: `["a","b"]`}, {Key: Thresholds, Value: "[0.5]"}}, "metadata toolkit.thresholds: 1 thresholds for 2 labels"},
	} {
		if _, err := Get(&onnx.Model{Metadata: c.entries}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.entries, err, c.want)
		}
	}
}

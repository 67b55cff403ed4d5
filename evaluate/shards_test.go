package evaluate

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"toolkit/shard"
)

// outputs are what toolkit evaluate writes of a report: its text and JSON, the
// confusion plot and the top losses' grid and list, by name.
func outputs(t *testing.T, r *Report) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	out := map[string][]byte{}
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	out["text"] = text.Bytes()
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	out["json"] = raw
	if err := PlotConfusion(filepath.Join(dir, "confusion.png"), r); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteTopLosses(filepath.Join(dir, "top_losses.png"), filepath.Join(dir, "top_losses.csv")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"confusion.png", "top_losses.png", "top_losses.csv"} {
		if out[name], err = os.ReadFile(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestShardsMergeToOneProcess evaluates the demo model on the 1,000 test images in
// batches of 64 (16 batches) in one process and as 3 shards merged, with test-time
// augmentation, the most confused pairs and the top losses; and as 20 shards (four of
// them empty) without: the merged report is one process's, and so are its text, JSON,
// confusion plot and top losses, byte for byte.
func TestShardsMergeToOneProcess(t *testing.T) {
	model, _, _ := demoModel(t)
	c, err := Load(model)
	if err != nil {
		t.Fatal(err)
	}
	data, err := OpenFolder("../data/fmnist-5to9/test", Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		count int
		opts  Options
	}{
		{3, Options{TopK: 2, BatchSize: 64, TTA: true, MostConfused: true, TopLosses: 7}},
		{20, Options{BatchSize: 64, TopLosses: 3}},
	} {
		one, err := Evaluate(ctx, c, data, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		for i := range tc.count {
			w, err := EvaluateShard(ctx, c, data, tc.opts, shard.Spec{Index: i, Count: tc.count}, dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(w)
		}
		merged, err := MergeEvaluation(dir, model, data.Name, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(one, merged) {
			t.Errorf("%d shards: the merged report differs from one process's", tc.count)
		}
		if len(one.TopLosses) != tc.opts.TopLosses || tc.opts.TTA && one.TTA == nil {
			t.Errorf("%d shards: %d top losses, TTA %v", tc.count, len(one.TopLosses), one.TTA)
		}
		want, got := outputs(t, one), outputs(t, merged)
		for name := range want {
			if !bytes.Equal(want[name], got[name]) {
				t.Errorf("%d shards: %s differs from one process's (%d bytes, one process %d)", tc.count, name, len(got[name]), len(want[name]))
			}
		}
		// A merge asked with other options than the shards ran with is refused.
		other := tc.opts
		other.TTA = !other.TTA
		if _, err := MergeEvaluation(dir, model, data.Name, other); err == nil || !strings.Contains(err.Error(), "was made for another job: tta") {
			t.Errorf("a merge with --tta %v: %v", other.TTA, err)
		}
	}
}

// TestPredictShards predicts 201 images in batches of 7 (29 batches) in one process,
// and as 4 shards merged, with and without TTA: the predictions are one process's.
func TestPredictShards(t *testing.T) {
	model, _, _ := demoModel(t)
	c, err := Load(model)
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{"../data/fmnist-5to9/test/8_bag/00078.png", "../data/fmnist-5to9/test/6_shirt"}
	for _, opts := range []Options{{BatchSize: 7}, {BatchSize: 7, TTA: true}} {
		one, err := Predict(context.Background(), c, paths, 3, opts)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		for i := range 4 {
			if _, err := PredictShard(context.Background(), c, paths, 3, opts, shard.Spec{Index: i, Count: 4}, dir); err != nil {
				t.Fatal(err)
			}
		}
		merged, err := MergePredictions(dir, model, paths, 3, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(one.Predictions) != 201 || !reflect.DeepEqual(one, merged) {
			t.Errorf("TTA %v: %d predictions; the merged ones differ from one process's", opts.TTA, len(one.Predictions))
		}
		if _, err := MergePredictions(dir, model, paths[1:], 3, opts); err == nil || !strings.Contains(err.Error(), "another job: paths") {
			t.Errorf("a merge of other paths: %v", err)
		}
	}
}

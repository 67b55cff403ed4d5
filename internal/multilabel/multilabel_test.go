package multilabel

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"toolkit/internal/testref"
)

// refScript computes scikit-learn's figures for each case: average_precision_score per
// label and macro, f1_score micro and macro and precision and recall per label at the
// given thresholds, and each label's best F1 over precision_recall_curve's thresholds.
const refScript = `
import json, sys, numpy as np
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, precision_recall_curve
out = []
for c in json.load(open(sys.argv[1])):
    n, k = c["n"], c["k"]
    y = np.array(c["y"]).reshape(n, k).astype(int)
    p = np.array(c["p"]).reshape(n, k)
    pred = (p >= np.array(c["thresholds"])).astype(int)
    best = []
    for j in range(k):
        pr, rc, th = precision_recall_curve(y[:, j], p[:, j])
        f = np.where(pr + rc > 0, 2 * pr * rc / np.maximum(pr + rc, 1e-300), 0)
        best.append(float(f[:-1].max()))
    out.append({"ap": average_precision_score(y, p, average=None).tolist(),
        "map": average_precision_score(y, p, average="macro"),
        "micro_f1": f1_score(y, pred, average="micro", zero_division=0),
        "macro_f1": f1_score(y, pred, average="macro", zero_division=0),
        "precision": precision_score(y, pred, average=None, zero_division=0).tolist(),
        "recall": recall_score(y, pred, average=None, zero_division=0).tolist(),
        "best_f1": best})
json.dump(out, open(sys.argv[2], "w"))
`

// TestAgainstScikitLearn checks the figures on random scores (with ties) against
// scikit-learn's: each label's average precision and the mAP, the micro and macro F1
// and each label's precision and recall at given thresholds, and Tune's thresholds
// reaching each label's best F1 of precision_recall_curve.
func TestAgainstScikitLearn(t *testing.T) {
	type tcase struct {
		N          int       `json:"n"`
		K          int       `json:"k"`
		P          []float64 `json:"p"`
		Y          []float64 `json:"y"`
		Thresholds []float64 `json:"thresholds"`
	}
	rng := rand.New(rand.NewPCG(8, 9))
	var cases []tcase
	for _, size := range [][2]int{{40, 3}, {64, 6}, {7, 2}} {
		n, k := size[0], size[1]
		c := tcase{N: n, K: k, P: make([]float64, n*k), Y: make([]float64, n*k), Thresholds: make([]float64, k)}
		for i := range c.P {
			c.Y[i] = float64(rng.IntN(2))
			if i%k == 0 && i/k < 2 {
				c.Y[i] = float64(i / k) // both values in every label's column
			}
			// Scores that say something, with ties (the logits rounded to 0.5).
			x := math.Round(2*(3*c.Y[i]-1.5+2*rng.NormFloat64())) / 2
			c.P[i] = 1 / (1 + math.Exp(-x))
		}
		for j := range c.Thresholds {
			c.Thresholds[j] = 0.3 + 0.4*rng.Float64()
		}
		cases = append(cases, c)
	}
	var ref []struct {
		AP      []float64 `json:"ap"`
		MAP     float64   `json:"map"`
		MicroF1 float64   `json:"micro_f1"`
		MacroF1 float64   `json:"macro_f1"`
		Prec    []float64 `json:"precision"`
		Rec     []float64 `json:"recall"`
		BestF1  []float64 `json:"best_f1"`
	}
	runSklearn(t, cases, &ref)
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-12 {
			t.Errorf("%s: %.15g, scikit-learn %.15g", what, got, want)
		}
	}
	for ci, c := range cases {
		name := fmt.Sprintf("case %d (%dx%d)", ci, c.N, c.K)
		hot := make([]float32, len(c.Y))
		for i, y := range c.Y {
			hot[i] = float32(y)
		}
		s := Score(c.P, hot, c.K, c.Thresholds)
		near(name+": mAP", s.MAP, ref[ci].MAP)
		near(name+": micro F1", s.MicroF1, ref[ci].MicroF1)
		near(name+": macro F1", s.MacroF1, ref[ci].MacroF1)
		for j, l := range s.Labels {
			near(fmt.Sprintf("%s: label %d AP", name, j), l.AP, ref[ci].AP[j])
			near(fmt.Sprintf("%s: label %d precision", name, j), l.Precision, ref[ci].Prec[j])
			near(fmt.Sprintf("%s: label %d recall", name, j), l.Recall, ref[ci].Rec[j])
		}
		th := Tune(c.P, hot, c.K)
		tuned := Score(c.P, hot, c.K, th)
		for j, l := range tuned.Labels {
			near(fmt.Sprintf("%s: label %d F1 at its tuned threshold %v", name, j, th[j]), l.F1, ref[ci].BestF1[j])
		}
	}
}

// TestNoPositives checks a label without positives: no average precision (NaN), a
// threshold of 0.5, and left out of the means.
func TestNoPositives(t *testing.T) {
	p := []float64{0.9, 0.2, 0.8, 0.7, 0.1, 0.4}
	hot := []float32{1, 0, 1, 0, 0, 0}
	if ap := AveragePrecision([]float64{0.2, 0.7, 0.4}, []bool{false, false, false}); !math.IsNaN(ap) {
		t.Errorf("AP without positives %v, want NaN", ap)
	}
	if th := Tune(p, hot, 2); th[1] != 0.5 {
		t.Errorf("thresholds %v: want 0.5 for the label without positives", th)
	}
	s := Score(p, hot, 2, Halves(2))
	if s.MAP != 1 || s.MacroF1 != s.Labels[0].F1 {
		t.Errorf("means over the labels with positives: %+v", s)
	}
}

func runSklearn(t *testing.T, in, out any) {
	t.Helper()
	const python = "/usr/bin/python3" // Debian's, with python3-sklearn; the first on PATH may be another
	if _, err := os.Stat(python); err != nil {
		testref.Missing(t, "scikit-learn reference unavailable (%s; on Debian: apt-get install python3-sklearn): %v", python, err)
	}
	dir := t.TempDir()
	inPath, outPath, script := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json"), filepath.Join(dir, "ref.py")
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte(refScript), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(python, script, inPath, outPath).CombinedOutput(); err != nil {
		if strings.Contains(string(msg), "No module named") {
			testref.Missing(t, "scikit-learn reference unavailable (on Debian: apt-get install python3-sklearn): %s", msg)
		}
		t.Fatalf("scikit-learn reference failed: %v\n%s", err, msg)
	}
	raw, err = os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
}

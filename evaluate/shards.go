package evaluate

import (
	"context"
	"encoding/json"
	"fmt"

	"toolkit/shard"
)

// Sharded evaluation and prediction (package shard): a shard computes what one process
// computes of its whole batches, bit for bit, and writes it to its part; a merge joins
// the parts in order and finishes them with the code one process finishes with, so that
// the report, the plots and the predictions are one process's, byte for byte.

// The commands whose parts these are (shard.Path).
const (
	evaluateCommand = "evaluate"
	predictCommand  = "predict"
)

// evalOwn is what an evaluation's part keeps by example besides its arrays.
type evalOwn struct {
	Labels     []int       `json:"labels"`
	Candidates []candidate `json:"candidates,omitempty"`
}

// EvaluateShard evaluates the examples of shard s's batches (shard.Spec.Range, in
// batches of opts.BatchSize) and writes them to the shard's part in dir
// (dir/evaluate-I-of-N.part), which MergeEvaluation joins with the other shards'.
func EvaluateShard(ctx context.Context, c *Classifier, data Labelled, opts Options, s shard.Spec, dir string) (shard.Written, error) {
	if err := s.Validate(); err != nil {
		return shard.Written{}, err
	}
	e, err := evaluateShard(ctx, c, data, opts, s)
	if err != nil {
		return shard.Written{}, err
	}
	k, size := len(e.shared.Classes), e.shared.Preprocess.Size()
	h, err := header(evaluateCommand, s, e.lo, e.hi, e.total, e.job, e.shared, evalOwn{Labels: e.labels, Candidates: e.cands})
	if err != nil {
		return shard.Written{}, err
	}
	h.Arrays = []shard.Array{{Name: "logits", Type: shard.Float32, Len: (e.hi - e.lo) * k}}
	if e.job.TTA {
		h.Arrays = append(h.Arrays, shard.Array{Name: "tta", Type: shard.Float64, Len: (e.hi - e.lo) * k})
	}
	h.Arrays = append(h.Arrays, shard.Array{Name: "inputs", Type: shard.Float32, Len: len(e.cands) * size})
	return shard.WritePart(dir, h, func(w *shard.Writer) error {
		if err := w.Float32s(e.logits); err != nil {
			return err
		}
		if err := w.Float64s(e.tta); err != nil {
			return err
		}
		for _, c := range e.cands {
			if err := w.Float32s(c.Input); err != nil {
				return err
			}
		}
		return nil
	})
}

// MergeEvaluation joins the parts in dir of the evaluation of the model file model on
// data (as the report names it: the folder, or a recipe's data.test) with opts, as
// EvaluateShard wrote them, into the report one process gives. The parts must be every
// shard's of one job, made with the same model path, data and options.
func MergeEvaluation(dir, model, data string, opts Options) (*Report, error) {
	job := newEvalJob(model, data, opts)
	parts, err := shard.Gather(dir, evaluateCommand, job)
	if err != nil {
		return nil, err
	}
	e := &evaluation{job: job, total: parts[0].Total}
	if err := json.Unmarshal(parts[0].Shared, &e.shared); err != nil {
		return nil, fmt.Errorf("%s: %w", parts[0].Path, err)
	}
	k, size := len(e.shared.Classes), e.shared.Preprocess.Size()
	for _, p := range parts {
		var own evalOwn
		if err := json.Unmarshal(p.Own, &own); err != nil {
			return nil, fmt.Errorf("%s: %w", p.Path, err)
		}
		logits, err := p.Float32s("logits")
		if err != nil {
			return nil, err
		}
		var tta []float64
		if job.TTA {
			if tta, err = p.Float64s("tta"); err != nil {
				return nil, err
			}
		}
		inputs, err := p.Float32s("inputs")
		if err != nil {
			return nil, err
		}
		n := p.Hi - p.Lo
		if len(own.Labels) != n || len(logits) != n*k || len(inputs) != len(own.Candidates)*size {
			return nil, fmt.Errorf("%s: %d labels, %d logits and %d input values for %d images of %d classes and %d candidates",
				p.Path, len(own.Labels), len(logits), len(inputs), n, k, len(own.Candidates))
		}
		for i, c := range own.Candidates {
			c.Input = inputs[i*size : (i+1)*size]
			e.cands = append(e.cands, c)
		}
		e.labels = append(e.labels, own.Labels...)
		e.logits = append(e.logits, logits...)
		e.tta = append(e.tta, tta...)
	}
	e.hi = e.total
	return e.report()
}

// predictOwn is what a prediction's part keeps by image besides its arrays.
type predictOwn struct {
	Files []string `json:"files"`
}

// PredictShard runs the images of shard s's batches (shard.Spec.Range, in batches of
// opts.BatchSize) and writes them to the shard's part in dir (dir/predict-I-of-N.part),
// which MergePredictions joins with the other shards'.
func PredictShard(ctx context.Context, c *Classifier, paths []string, k int, opts Options, s shard.Spec, dir string) (shard.Written, error) {
	if err := s.Validate(); err != nil {
		return shard.Written{}, err
	}
	p, err := predictShard(ctx, c, paths, k, opts, s)
	if err != nil {
		return shard.Written{}, err
	}
	h, err := header(predictCommand, s, p.lo, p.hi, p.total, p.job, p.shared, predictOwn{Files: p.files})
	if err != nil {
		return shard.Written{}, err
	}
	n := (p.hi - p.lo) * len(p.shared.Classes)
	h.Arrays = []shard.Array{{Name: "logits", Type: shard.Float32, Len: n}}
	if p.job.TTA {
		h.Arrays = append(h.Arrays, shard.Array{Name: "tta", Type: shard.Float64, Len: n})
	}
	return shard.WritePart(dir, h, func(w *shard.Writer) error {
		if err := w.Float32s(p.logits); err != nil {
			return err
		}
		return w.Float64s(p.tta)
	})
}

// MergePredictions joins the parts in dir of the prediction of the model file model on
// paths with k classes each and opts, as PredictShard wrote them, into the predictions
// one process gives.
func MergePredictions(dir, model string, paths []string, k int, opts Options) (*Predictions, error) {
	job := newPredictJob(model, paths, k, opts)
	parts, err := shard.Gather(dir, predictCommand, job)
	if err != nil {
		return nil, err
	}
	p := &prediction{job: job, total: parts[0].Total, hi: parts[0].Total}
	if err := json.Unmarshal(parts[0].Shared, &p.shared); err != nil {
		return nil, fmt.Errorf("%s: %w", parts[0].Path, err)
	}
	for _, part := range parts {
		var own predictOwn
		if err := json.Unmarshal(part.Own, &own); err != nil {
			return nil, fmt.Errorf("%s: %w", part.Path, err)
		}
		logits, err := part.Float32s("logits")
		if err != nil {
			return nil, err
		}
		if job.TTA {
			tta, err := part.Float64s("tta")
			if err != nil {
				return nil, err
			}
			p.tta = append(p.tta, tta...)
		}
		if len(own.Files) != part.Hi-part.Lo {
			return nil, fmt.Errorf("%s: %d files for images %d to %d", part.Path, len(own.Files), part.Lo, part.Hi)
		}
		p.files = append(p.files, own.Files...)
		p.logits = append(p.logits, logits...)
	}
	return p.predictions()
}

// header is a part's header with its JSON sections.
func header(command string, s shard.Spec, lo, hi, total int, job, shared, own any) (shard.Header, error) {
	h := shard.Header{Command: command, Shard: s, Lo: lo, Hi: hi, Total: total}
	var err error
	if h.Job, err = json.Marshal(job); err != nil {
		return h, err
	}
	if h.Shared, err = json.Marshal(shared); err != nil {
		return h, err
	}
	h.Own, err = json.Marshal(own)
	return h, err
}

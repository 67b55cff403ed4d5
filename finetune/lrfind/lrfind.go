package lrfind

import (
	"fmt"
	"math"
)

// Options is the sweep: Steps steps from Start to End, stopping when the smoothed loss
// passes StopFactor times its best (0: never).
type Options struct {
	Start, End float64
	Steps      int
	StopFactor float64
	Beta       float64 // the smoothing of the loss
}

// Defaults are fastai's: 1e-7 to 10 in 100 steps, stop at 4x the best loss, beta 0.98.
func Defaults() Options { return Options{Start: 1e-7, End: 10, Steps: 100, StopFactor: 4, Beta: 0.98} }

// Validate checks the options.
func (o Options) Validate() error {
	if !(o.Start > 0) || !(o.End > o.Start) || math.IsInf(o.End, 0) {
		return fmt.Errorf("lr-find: want 0 < start < end, got start %v, end %v", o.Start, o.End)
	}
	if o.Steps < 6 {
		return fmt.Errorf("lr-find: steps %d; want at least 6 (fastai's least)", o.Steps)
	}
	if !(o.Beta >= 0 && o.Beta < 1) {
		return fmt.Errorf("lr-find: beta %v; want [0, 1)", o.Beta)
	}
	return nil
}

// Rate is the rate of step i (from 0): Start * (End/Start)^(i/Steps), fastai's SchedExp
// at position i/num_it.
func (o Options) Rate(i int) float64 {
	return o.Start * math.Pow(o.End/o.Start, float64(i)/float64(o.Steps))
}

// Recorder keeps the sweep's rates and smoothed losses.
type Recorder struct {
	opts   Options
	avg    float64
	count  int
	best   float64
	LRs    []float64
	Losses []float64 // smoothed
	// Stopped says why the sweep ended early ("" if it ran every step).
	Stopped string
}

// NewRecorder starts a sweep's record.
func NewRecorder(o Options) *Recorder { return &Recorder{opts: o, best: math.Inf(1)} }

// Add records a step's rate and loss and says whether the sweep must stop. A loss that
// is not finite stops it and is not recorded.
func (r *Recorder) Add(lr, loss float64) (stop bool) {
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		r.Stopped = fmt.Sprintf("the loss became %v at rate %.3g", loss, lr)
		return true
	}
	r.count++
	r.avg = r.opts.Beta*r.avg + (1-r.opts.Beta)*loss
	smooth := r.avg / (1 - math.Pow(r.opts.Beta, float64(r.count)))
	r.LRs = append(r.LRs, lr)
	r.Losses = append(r.Losses, smooth)
	if smooth < r.best {
		r.best = smooth
	}
	if r.opts.StopFactor > 0 && smooth > r.opts.StopFactor*r.best {
		r.Stopped = fmt.Sprintf("the smoothed loss %.4g passed %gx its best %.4g at rate %.3g", smooth, r.opts.StopFactor, r.best, lr)
		return true
	}
	if len(r.LRs) >= r.opts.Steps {
		return true
	}
	return false
}

// Suggestion is a suggested rate and the smoothed loss there.
type Suggestion struct {
	Name string  `json:"name"`
	LR   float64 `json:"lr"`
	Loss float64 `json:"loss"`
}

// Suggest returns fastai's valley and steep suggestions for the record, over the points
// fastai's lr_find looks at: from Steps/10 on, the last 5 left out.
func (r *Recorder) Suggest() (valley, steep Suggestion, err error) {
	lo, hi := r.opts.Steps/10, len(r.LRs)-5
	if hi-lo < 2 {
		return Suggestion{}, Suggestion{}, fmt.Errorf("lr-find: the sweep stopped after %d steps (%s): too few to suggest a rate; start lower or take more steps", len(r.LRs), r.Stopped)
	}
	lrs, losses := r.LRs[lo:hi], r.Losses[lo:hi]
	return Valley(lrs, losses), Steep(lrs, losses), nil
}

// Valley is fastai's valley: the longest stretch over which the loss keeps falling (the
// longest decreasing subsequence ending at each point), and the point two thirds of the
// way along it.
func Valley(lrs, losses []float64) Suggestion {
	n := len(losses)
	lds := make([]int, n)
	for i := range lds {
		lds[i] = 1
	}
	maxStart, maxEnd := 0, 0
	for i := 1; i < n; i++ {
		for j := 0; j < i; j++ {
			if losses[i] < losses[j] && lds[i] < lds[j]+1 {
				lds[i] = lds[j] + 1
			}
			if lds[maxEnd] < lds[i] {
				maxEnd = i
				maxStart = maxEnd - lds[maxEnd]
			}
		}
	}
	sections := float64(maxEnd-maxStart) / 3
	// fastai's maxStart is one before the stretch: for a stretch from the first point
	// that is -1, and a short stretch then gives -1, which Python reads as the last
	// point; the first is the stretch's.
	idx := max(0, maxStart+int(sections)+int(sections/2))
	return Suggestion{Name: "valley", LR: lrs[idx], Loss: losses[idx]}
}

// Steep is fastai's steep: the rate where the loss falls fastest against log(rate).
func Steep(lrs, losses []float64) Suggestion {
	best, at := math.Inf(1), 0
	for i := 0; i+1 < len(lrs); i++ {
		g := (losses[i+1] - losses[i]) / (math.Log(lrs[i+1]) - math.Log(lrs[i]))
		if g < best {
			best, at = g, i
		}
	}
	return Suggestion{Name: "steep", LR: lrs[at], Loss: losses[at]}
}

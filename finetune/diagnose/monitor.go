package diagnose

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// Kind names a finding; the names are the "finding" values of metrics.jsonl.
type Kind string

// The kinds of finding (see the package documentation).
const (
	NonFinite     Kind = "non_finite"
	LossExploding Kind = "loss_exploding"
	LossRising    Kind = "loss_rising"
	Chance        Kind = "chance"
	GradVanishing Kind = "grad_vanishing"
	GradExploding Kind = "grad_exploding"
	DeadReLU      Kind = "dead_relu"
	UpdateRatio   Kind = "update_ratio"
	Overfitting   Kind = "overfitting"
)

// Kinds lists every kind.
func Kinds() []Kind {
	return []Kind{NonFinite, LossExploding, LossRising, Chance, GradVanishing, GradExploding, DeadReLU, UpdateRatio, Overfitting}
}

// Thresholds are the detectors' limits.
type Thresholds struct {
	// The loss and accuracy detectors compare windows of Window steps, Window being a
	// third of an epoch clamped to [MinWindow, MaxWindow], and wait for two windows of
	// the stage.
	MinWindow, MaxWindow int
	// LossExploding: the median loss of the last three steps above ExplodeFactor times
	// the larger of ln(C) and the stage's first loss.
	ExplodeFactor float64
	// LossRising: the smoothed loss above RiseFactor times its lowest in the stage, and
	// above ln(C).
	RiseFactor float64
	// Chance: the window's accuracy within two binomial standard deviations (plus
	// ChanceSlack) of 1/C, and either its loss within ChanceLoss x ln(C) of ln(C) and
	// not falling (above FlatFraction of the previous window's), or more than
	// CollapseFraction of the window's predictions on one class. In a stage that trains
	// the head alone it is judged at the end of its epochs instead (Monitor.Epoch): two
	// epochs in a row with the training accuracy at chance (within the same bound), and
	// the validation accuracy too where there is validation data, the loss (validation,
	// else training) not below FlatFraction of the previous epoch's nor of the stage's
	// first epoch's.
	ChanceSlack, ChanceLoss, FlatFraction, CollapseFraction float64
	// EpochFlatFraction is FlatFraction for the epochs of a stage judged by epochs: a
	// loss that falls by more than 1% an epoch is moving, however slowly (the small
	// validation sets of a fine-tuning run leave a chance bound wide enough to hold a
	// head that learns).
	EpochFlatFraction float64
	// GradVanishing: |g| below VanishRatio x |w| in two sampled steps in a row.
	VanishRatio float64
	// GradExploding: |g| above ExplodeGradRatio x |w|.
	ExplodeGradRatio float64
	// DeadReLU: more than DeadFraction of a pretrained group's units dead (DeadFractionHead
	// of the head's, which a sound run thins out to about half), and DeadRise more than in
	// the run's first sample, in two sampled steps in a row.
	DeadFraction, DeadFractionHead, DeadRise float64
	// UpdateRatio: the median |dw|/|w| of a group's last RatioSamples sampled steps
	// above UpdateRatioBase (pretrained groups) or UpdateRatioHead (the new head).
	UpdateRatioBase, UpdateRatioHead float64
	RatioSamples                     int
	// Overfitting: training accuracy more than OverfitGap above validation accuracy,
	// and the validation loss above OverfitLossRise times its best.
	OverfitGap, OverfitLossRise float64
}

// DefaultThresholds returns the limits the toolkit uses.
func DefaultThresholds() Thresholds {
	return Thresholds{
		MinWindow: 3, MaxWindow: 10,
		ExplodeFactor:     10,
		RiseFactor:        2,
		ChanceSlack:       0.02,
		ChanceLoss:        0.1,
		FlatFraction:      0.97,
		EpochFlatFraction: 0.99,
		CollapseFraction:  0.95,
		VanishRatio:       1e-8,
		ExplodeGradRatio:  100,
		DeadFraction:      0.5,
		DeadFractionHead:  0.9,
		DeadRise:          0.25,
		UpdateRatioBase:   0.1,
		UpdateRatioHead:   1,
		RatioSamples:      3,
		OverfitGap:        0.15,
		OverfitLossRise:   1.2,
	}
}

// Reported says whether a kind was reported for a group ("" for the whole model).
func (m *Monitor) Reported(kind Kind, group string) bool {
	_, ok := m.State.Reported[string(kind)+"|"+group]
	return ok
}

// Step is one training step's sample. Groups is filled on sampled steps only.
type Step struct {
	Loss      float64
	N         int   // examples in the batch
	Correct   int   // of them predicted right
	Predicted []int // per class, how many of the batch were predicted as it
	Sampled   bool
	Groups    []Group
}

// Group is one layer group on a sampled step.
type Group struct {
	Name       string
	Trained    bool
	Pretrained bool    // false for the freshly initialised head
	GradNorm   float64 // trained groups only
	WeightNorm float64 // after the step
	UpdateNorm float64 // the step's |dw|, trained groups only
	DeadUnits  int     // ReLU units that output zero for the whole batch
	Units      int     // ReLU units of the group (0: the group has none)
}

// Epoch is an epoch's sample, after validation.
type Epoch struct {
	TrainAcc  float64
	TrainLoss float64
	TrainN    int // training examples in the epoch
	HasVal    bool
	ValAcc    float64
	ValLoss   float64
	ValN      int // validation examples
}

// Signal is a detector firing.
type Signal struct {
	Kind    Kind
	Group   string // the layer group, for per-group kinds
	Value   float64
	Limit   float64
	Seen    string // what was seen, with the numbers
	Meaning string // what it means
}

// epochRecord is the part of an epoch a head-only stage's chance check keeps.
type epochRecord struct {
	Acc     float64 `json:"acc"`
	Loss    float64 `json:"loss"`
	N       int     `json:"n"`
	HasVal  bool    `json:"has_val,omitempty"`
	ValAcc  float64 `json:"val_acc,omitempty"`
	ValLoss float64 `json:"val_loss,omitempty"`
	ValN    int     `json:"val_n,omitempty"`
}

// loss is the epoch's validation loss, or its training loss without validation data.
func (e epochRecord) loss() float64 {
	if e.HasVal {
		return e.ValLoss
	}
	return e.Loss
}

// stepRecord is the part of a step the windows keep.
type stepRecord struct {
	Loss      float64 `json:"loss"`
	N         int     `json:"n"`
	Correct   int     `json:"correct"`
	Predicted []int   `json:"predicted"`
}

// State is everything a Monitor remembers; it is made for encoding/json so that a
// resumed run carries on where it stopped.
type State struct {
	Stage     int          `json:"stage"`
	StageStep int          `json:"stage_step"`
	Window    int          `json:"window"`
	Recent    []stepRecord `json:"recent,omitempty"`
	FirstLoss float64      `json:"first_loss"`
	// HeadOnly says the stage trains the new head alone; EpochSteps is the stage's
	// steps per epoch. ByEpoch says that the stage's chance is judged at the end of its
	// epochs (Epoch), not on its steps: a head trained alone, or a stage that started
	// with the training accuracy already at chance; HeadEpochs are its epochs so far.
	// Last is the run's last epoch before now (HasLast false before the first).
	HeadOnly   bool                 `json:"head_only,omitempty"`
	EpochSteps int                  `json:"epoch_steps,omitempty"`
	ByEpoch    bool                 `json:"by_epoch,omitempty"`
	HeadEpochs []epochRecord        `json:"head_epochs,omitempty"`
	HasLast    bool                 `json:"has_last,omitempty"`
	Last       epochRecord          `json:"last,omitempty"`
	EMA        float64              `json:"ema"`
	EMASteps   int                  `json:"ema_steps"`
	MinEMA     float64              `json:"min_ema"`
	Baseline   map[string]float64   `json:"dead_baseline,omitempty"`
	Ratios     map[string][]float64 `json:"ratios,omitempty"`
	Vanished   map[string]int       `json:"vanished,omitempty"`
	Dead       map[string]int       `json:"dead,omitempty"`
	HasBest    bool                 `json:"has_best"`
	BestVal    float64              `json:"best_val_loss"`
	// Reported maps kind|group to the stage it was reported in.
	Reported map[string]int `json:"reported,omitempty"`
}

// Monitor runs the detectors over a run's samples.
type Monitor struct {
	Classes int
	// Chance is what a model that ignores its input scores (DefaultChance unless the
	// loss or the task says otherwise).
	Chance ChanceLevel
	Limits Thresholds
	State  State
}

// ChanceLevel is what a model whose output does not depend on its input scores: its
// accuracy and its training loss, and how messages write the loss.
type ChanceLevel struct {
	Acc      float64
	Loss     float64
	LossText string // "ln(5) = 1.609"
	// NoCollapse turns off the check that most predictions are one class (multi-label
	// outputs are not one class).
	NoCollapse bool
}

// DefaultChance is a single-label classifier's over the given classes with the
// cross-entropy: accuracy 1/C, loss ln(C).
func DefaultChance(classes int) ChanceLevel {
	lnC := math.Log(float64(classes))
	return ChanceLevel{Acc: 1 / float64(classes), Loss: lnC, LossText: fmt.Sprintf("ln(%d) = %.3f", classes, lnC)}
}

// New returns a monitor for a classifier with the given number of classes.
func New(classes int, limits Thresholds) *Monitor {
	return &Monitor{Classes: classes, Chance: DefaultChance(classes), Limits: limits}
}

// BeginStage starts the windows of a stage (index) with stepsPerEpoch steps an epoch;
// headOnly says that the stage trains only the new head (the base frozen).
//
// Chance is judged on the stage's steps (two windows, so that it is caught within the
// first epoch) in a stage that trains the base from the start of the run (a fresh head:
// the failure this toolkit exists for) or from a model whose training accuracy was above
// chance (a fall to chance is a detuned base); otherwise at the end of its epochs: a
// head trained alone, or a stage that starts with the training accuracy at chance
// (dropout and augmentation can keep it there while the validation accuracy is not),
// has nothing to lose yet.
func (m *Monitor) BeginStage(index, stepsPerEpoch int, headOnly bool) {
	s := &m.State
	s.Stage, s.StageStep, s.HeadOnly, s.EpochSteps, s.HeadEpochs = index, 0, headOnly, stepsPerEpoch, nil
	s.ByEpoch = headOnly || s.HasLast && s.Last.N > 0 && s.Last.Acc <= m.chanceLimit(s.Last.N)
	s.Window = min(max(stepsPerEpoch/3, m.Limits.MinWindow), m.Limits.MaxWindow)
	s.Recent, s.EMA, s.EMASteps, s.MinEMA, s.FirstLoss = nil, 0, 0, 0, 0
	s.Ratios, s.Vanished, s.Dead = nil, nil, nil
}

// Forget drops what was reported from stage index on, so that a stage run again after a
// repair is watched afresh.
func (m *Monitor) Forget(index int) {
	for k, st := range m.State.Reported {
		if st >= index {
			delete(m.State.Reported, k)
		}
	}
}

// emit returns sig unless its kind was reported before for its group: each finding is
// reported once in a run (once again after a repair).
func (m *Monitor) emit(out []Signal, sig Signal) []Signal {
	key := string(sig.Kind) + "|" + sig.Group
	if _, ok := m.State.Reported[key]; ok {
		return out
	}
	if m.State.Reported == nil {
		m.State.Reported = map[string]int{}
	}
	m.State.Reported[key] = m.State.Stage
	return append(out, sig)
}

// Step takes one step's sample and returns the signals it raises.
func (m *Monitor) Step(x Step) []Signal {
	s := &m.State
	l := m.Limits
	s.StageStep++
	if s.StageStep == 1 {
		s.FirstLoss = x.Loss
	}
	s.Recent = append(s.Recent, stepRecord{Loss: x.Loss, N: x.N, Correct: x.Correct, Predicted: slices.Clone(x.Predicted)})
	if n := 2 * s.Window; len(s.Recent) > n {
		s.Recent = slices.Delete(s.Recent, 0, len(s.Recent)-n)
	}
	const beta = 0.9
	s.EMA = beta*s.EMA + (1-beta)*x.Loss
	s.EMASteps++
	smooth := s.EMA / (1 - math.Pow(beta, float64(s.EMASteps)))
	if s.EMASteps == 1 || smooth < s.MinEMA {
		s.MinEMA = smooth
	}
	var out []Signal
	lnC := m.Chance.Loss
	if n := len(s.Recent); n >= 3 {
		last := []float64{s.Recent[n-1].Loss, s.Recent[n-2].Loss, s.Recent[n-3].Loss}
		sort.Float64s(last)
		ref := max(lnC, s.FirstLoss)
		if med := last[1]; med > l.ExplodeFactor*ref {
			out = m.emit(out, Signal{
				Kind: LossExploding, Value: med, Limit: l.ExplodeFactor * ref,
				Seen: fmt.Sprintf("the training loss is %.4g (median of the last 3 steps), %.0fx chance level %s and %.0fx the stage's first loss %.3f",
					med, med/lnC, m.Chance.LossText, med/s.FirstLoss, s.FirstLoss),
				Meaning: "the steps are far too large: each update overshoots and the weights are thrown far from where they started",
			})
		}
	}
	warm := s.StageStep >= 2*s.Window
	if warm && smooth > l.RiseFactor*s.MinEMA && smooth > lnC {
		out = m.emit(out, Signal{
			Kind: LossRising, Value: smooth, Limit: l.RiseFactor * s.MinEMA,
			Seen: fmt.Sprintf("the smoothed training loss rose to %.4f from %.4f earlier in the stage, above chance level %s",
				smooth, s.MinEMA, m.Chance.LossText),
			Meaning: "training is undoing what it learnt: the learning rate is too high for this stage",
		})
	}
	// A head trained alone starts at chance, learns through dropout and augmentation
	// that keep its training windows noisy, and cannot detune a frozen base: it is
	// judged at the end of an epoch, on validation data where there is some (Epoch);
	// so is a stage that starts at chance (BeginStage).
	if warm && len(s.Recent) == 2*s.Window && !s.ByEpoch {
		out = m.chanceCheck(out)
	}
	if x.Sampled {
		out = m.groupChecks(out, x.Groups)
	}
	return out
}

func (m *Monitor) chanceCheck(out []Signal) []Signal {
	s := &m.State
	l := m.Limits
	prev, cur := s.Recent[:s.Window], s.Recent[s.Window:]
	var n, correct int
	var loss, prevLoss float64
	counts := make([]int, m.Classes)
	for i, r := range cur {
		n += r.N
		correct += r.Correct
		loss += r.Loss
		prevLoss += prev[i].Loss
		for c, k := range r.Predicted {
			if c < len(counts) {
				counts[c] += k
			}
		}
	}
	if n == 0 {
		return out
	}
	loss /= float64(len(cur))
	prevLoss /= float64(len(prev))
	p := m.Chance.Acc
	acc := float64(correct) / float64(n)
	limit := p + 2*math.Sqrt(p*(1-p)/float64(n)) + l.ChanceSlack
	if acc > limit {
		return out
	}
	top, topClass := 0, 0
	for c, k := range counts {
		if k > top {
			top, topClass = k, c
		}
	}
	lnC := m.Chance.Loss
	flat := math.Abs(loss-lnC) <= l.ChanceLoss*lnC && loss >= l.FlatFraction*prevLoss
	collapsed := !m.Chance.NoCollapse && float64(top) >= l.CollapseFraction*float64(n)
	if !flat && !collapsed {
		return out
	}
	seen := fmt.Sprintf("accuracy %.1f%% over the last %d steps (%d images), chance is %.1f%%; the loss %.4f is at chance level %s and not falling",
		100*acc, len(cur), n, 100*p, loss, m.Chance.LossText)
	if collapsed {
		seen = fmt.Sprintf("accuracy %.1f%% over the last %d steps (%d images), chance is %.1f%%; %d%% of the predictions are class %d",
			100*acc, len(cur), n, 100*p, 100*top/n, topClass)
	}
	return m.emit(out, Signal{
		Kind: Chance, Value: acc, Limit: limit, Seen: seen,
		Meaning: "the model predicts nothing: its output no longer depends on the image (a pretrained base detuned by large updates, or a dead head)",
	})
}

func (m *Monitor) groupChecks(out []Signal, groups []Group) []Signal {
	s := &m.State
	l := m.Limits
	if s.Baseline == nil {
		s.Baseline = map[string]float64{}
	}
	for _, g := range groups {
		if g.Units > 0 {
			frac := float64(g.DeadUnits) / float64(g.Units)
			base, ok := s.Baseline[g.Name]
			if !ok {
				s.Baseline[g.Name], base = frac, frac
			}
			limit := l.DeadFraction
			if !g.Pretrained {
				limit = l.DeadFractionHead
			}
			if frac > limit && frac > base+l.DeadRise {
				s.Dead = increment(s.Dead, g.Name)
			} else {
				delete(s.Dead, g.Name)
			}
			if s.Dead[g.Name] >= 2 {
				out = m.emit(out, Signal{
					Kind: DeadReLU, Group: g.Name, Value: frac, Limit: max(limit, base+l.DeadRise),
					Seen: fmt.Sprintf("%.0f%% of the ReLU units of group %s (%d of %d) output zero for every image of the batch, against %.0f%% at the start",
						100*frac, g.Name, g.DeadUnits, g.Units, 100*base),
					Meaning: "dead units pass no gradient: what they fed is lost and the layers below them stop learning",
				})
			}
		}
		if !g.Trained || g.WeightNorm == 0 {
			continue
		}
		ratio := g.GradNorm / g.WeightNorm
		if g.GradNorm == 0 || ratio < l.VanishRatio {
			s.Vanished = increment(s.Vanished, g.Name)
		} else {
			delete(s.Vanished, g.Name)
		}
		if s.Vanished[g.Name] >= 2 {
			out = m.emit(out, Signal{
				Kind: GradVanishing, Group: g.Name, Value: g.GradNorm, Limit: l.VanishRatio * g.WeightNorm,
				Seen:    fmt.Sprintf("the gradient norm of group %s is %.3g (weights %.3g) in the last sampled steps", g.Name, g.GradNorm, g.WeightNorm),
				Meaning: "no gradient reaches the group: it is not learning (dead ReLUs above it, or a saturated output)",
			})
		}
		if ratio > l.ExplodeGradRatio {
			out = m.emit(out, Signal{
				Kind: GradExploding, Group: g.Name, Value: ratio, Limit: l.ExplodeGradRatio,
				Seen:    fmt.Sprintf("the gradient norm of group %s is %.3g, %.0fx its weight norm %.3g", g.Name, g.GradNorm, ratio, g.WeightNorm),
				Meaning: "the gradients are exploding: the next updates will wreck the group's weights",
			})
		}
		if s.Ratios == nil {
			s.Ratios = map[string][]float64{}
		}
		r := append(s.Ratios[g.Name], g.UpdateNorm/g.WeightNorm)
		if len(r) > l.RatioSamples {
			r = r[len(r)-l.RatioSamples:]
		}
		s.Ratios[g.Name] = r
		if len(r) < l.RatioSamples {
			continue
		}
		med := median(r)
		limit, meaning := l.UpdateRatioBase, fmt.Sprintf("the pretrained group %s is being rewritten, not fine-tuned: its features are lost (fine-tuning moves pretrained weights by about 1e-3 of their norm a step)", g.Name)
		if !g.Pretrained {
			limit, meaning = l.UpdateRatioHead, "each step replaces the head's weights rather than adjusting them: training cannot settle"
		}
		if med > limit {
			out = m.emit(out, Signal{
				Kind: UpdateRatio, Group: g.Name, Value: med, Limit: limit,
				Seen:    fmt.Sprintf("the updates of group %s are %.3g of its weights per step (|dw|/|w|, median of %d sampled steps); the limit is %.3g", g.Name, med, len(r), limit),
				Meaning: meaning,
			})
		}
	}
	return out
}

// chanceLimit is the accuracy at chance over n examples: 1/C plus two binomial standard
// deviations and ChanceSlack.
func (m *Monitor) chanceLimit(n int) float64 {
	p := m.Chance.Acc
	return p + 2*math.Sqrt(p*(1-p)/float64(max(n, 1))) + m.Limits.ChanceSlack
}

// headChance records the epoch and judges a stage whose chance is judged by epochs
// (ByEpoch: a head trained alone, say) at its end: two
// epochs in a row at chance (the training accuracy, and the validation accuracy where
// there is validation data), the loss (the validation loss, else the training loss)
// not falling from one to the other, nor since the stage's first epoch. One epoch is
// not enough: a head on globally pooled features can sit at chance for its first epoch
// and learn in the next; nor is a flat last epoch: a slow head at 1e-4 was at 20% on
// 50 validation images twice while its validation loss had fallen 9% since its first
// epoch, and 30% on the test images.
func (m *Monitor) headChance(out []Signal, x Epoch) []Signal {
	s := &m.State
	cur := epochRecord{Acc: x.TrainAcc, Loss: x.TrainLoss, N: x.TrainN}
	if x.HasVal && x.ValN > 0 {
		cur.HasVal, cur.ValAcc, cur.ValLoss, cur.ValN = true, x.ValAcc, x.ValLoss, x.ValN
	}
	s.HeadEpochs = append(s.HeadEpochs, cur)
	s.HasLast, s.Last = true, cur
	if !s.ByEpoch {
		return out
	}
	n := len(s.HeadEpochs)
	if n < 2 {
		return out
	}
	prev, first := s.HeadEpochs[n-2], s.HeadEpochs[0]
	flat := cur.loss() >= m.Limits.EpochFlatFraction*prev.loss() && cur.loss() >= m.Limits.EpochFlatFraction*first.loss()
	if !m.epochAtChance(prev) || !m.epochAtChance(cur) || !flat {
		return out
	}
	p := m.Chance.Acc
	meaning := "the new head has not learned to tell the classes apart: the base is frozen, so nothing pretrained was detuned; the head's rate is too low for it to move, or so high that its units died (dead_relu and update_ratio findings say so)"
	if !s.HeadOnly {
		meaning = "the model predicts nothing: its output does not depend on the image (a pretrained base detuned by large updates, or a dead head)"
	}
	if cur.HasVal {
		return m.emit(out, Signal{
			Kind: Chance, Value: cur.ValAcc, Limit: m.chanceLimit(cur.ValN), Meaning: meaning,
			Seen: fmt.Sprintf("validation accuracy %.1f%% and %.1f%% (%d images) in epochs %d and %d of the stage, training accuracy %.1f%% and %.1f%%; chance is %.1f%%; the validation loss %.4f is not below %.4f",
				100*prev.ValAcc, 100*cur.ValAcc, cur.ValN, n-1, n, 100*prev.Acc, 100*cur.Acc, 100*p, cur.ValLoss, prev.ValLoss),
		})
	}
	return m.emit(out, Signal{
		Kind: Chance, Value: cur.Acc, Limit: m.chanceLimit(cur.N), Meaning: meaning,
		Seen: fmt.Sprintf("training accuracy %.1f%% and %.1f%% in epochs %d and %d of the stage (no validation data); chance is %.1f%%; the loss %.4f is not below %.4f",
			100*prev.Acc, 100*cur.Acc, n-1, n, 100*p, cur.Loss, prev.Loss),
	})
}

// epochAtChance says whether an epoch's training accuracy, and its validation accuracy
// if it has one, are at chance.
func (m *Monitor) epochAtChance(e epochRecord) bool {
	if e.N == 0 || e.Acc > m.chanceLimit(e.N) {
		return false
	}
	return !e.HasVal || e.ValAcc <= m.chanceLimit(e.ValN)
}

// Epoch takes an epoch's sample after validation and returns the signals it raises.
func (m *Monitor) Epoch(x Epoch) []Signal {
	s := &m.State
	l := m.Limits
	var out []Signal
	out = m.headChance(out, x)
	if !x.HasVal {
		return out
	}
	if s.HasBest {
		gap := x.TrainAcc - x.ValAcc
		if gap > l.OverfitGap && x.ValLoss > l.OverfitLossRise*s.BestVal {
			out = m.emit(out, Signal{
				Kind: Overfitting, Value: gap, Limit: l.OverfitGap,
				Seen: fmt.Sprintf("training accuracy %.1f%% against validation accuracy %.1f%%; the validation loss %.4f is up from its best %.4f",
					100*x.TrainAcc, 100*x.ValAcc, x.ValLoss, s.BestVal),
				Meaning: "the model is memorising the training images instead of learning the classes",
			})
		}
	}
	if !s.HasBest || x.ValLoss < s.BestVal {
		s.HasBest, s.BestVal = true, x.ValLoss
	}
	return out
}

func increment(m map[string]int, k string) map[string]int {
	if m == nil {
		m = map[string]int{}
	}
	m[k]++
	return m
}

func median(x []float64) float64 {
	s := slices.Clone(x)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

package schedule

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// DefaultFactor is ULMFiT's ratio between the rates of neighbouring layer groups.
const DefaultFactor = 2.6

// Spread is a stage's learning-rate spec: it resolves to one base rate per layer group.
//
// Rates takes the model's groups in order (earliest first, the head last) and the names of
// the groups the stage trains, and returns one rate per entry of groups: the group's base
// rate if the stage trains it, 0 if not. It rejects empty or duplicate group names, trained
// names that are not groups, an empty trained list, and any rate of a trained group that is
// not finite and > 0.
type Spread interface {
	Rates(groups, trained []string) ([]float64, error)
}

// Scalar gives every trained group the same rate.
type Scalar float64

// ULMFiT gives the last group (the head) Max and every group below it the rate of the group
// above divided by Factor: group i of n gets Max/Factor^(n-1-i). Positions count over all
// groups of the model, trained or not.
type ULMFiT struct {
	Max    float64
	Factor float64 // > 0; DefaultFactor in the paper
}

// Slice is fastai's slice(lo, hi): rates spread geometrically from Lo at the first group to
// Hi at the last, group i of n getting Lo*(Hi/Lo)^(i/(n-1)) (fastai's even_mults), over all
// groups of the model as fastai does, not only the trained ones. A model with one group
// gets Hi. Lo = 0 is fastai's slice(hi): every group but the last gets Hi/10, the last Hi.
type Slice struct {
	Lo, Hi float64
}

// PerGroup names the rate of each group. Every trained group must be named; names that are
// not groups of the model are rejected; groups named but not trained are ignored.
type PerGroup map[string]float64

// Rates implements Spread.
func (s Scalar) Rates(groups, trained []string) ([]float64, error) {
	on, err := checkGroups(groups, trained)
	if err != nil {
		return nil, err
	}
	if !validRate(float64(s)) {
		return nil, fmt.Errorf("lr %v: must be finite and > 0", float64(s))
	}
	return fill(groups, on, func(int) float64 { return float64(s) })
}

// Rates implements Spread.
func (u ULMFiT) Rates(groups, trained []string) ([]float64, error) {
	on, err := checkGroups(groups, trained)
	if err != nil {
		return nil, err
	}
	if !validRate(u.Max) {
		return nil, fmt.Errorf("lr max %v: must be finite and > 0", u.Max)
	}
	if !validRate(u.Factor) {
		return nil, fmt.Errorf("lr factor %v: must be finite and > 0", u.Factor)
	}
	all := make([]float64, len(groups))
	all[len(all)-1] = u.Max
	for i := len(all) - 2; i >= 0; i-- {
		all[i] = all[i+1] / u.Factor
	}
	return fill(groups, on, func(i int) float64 { return all[i] })
}

// Rates implements Spread.
func (s Slice) Rates(groups, trained []string) ([]float64, error) {
	on, err := checkGroups(groups, trained)
	if err != nil {
		return nil, err
	}
	if !validRate(s.Hi) {
		return nil, fmt.Errorf("lr slice hi %v: must be finite and > 0", s.Hi)
	}
	n := len(groups)
	if s.Lo == 0 {
		return fill(groups, on, func(i int) float64 {
			if i == n-1 {
				return s.Hi
			}
			return s.Hi / 10
		})
	}
	if !validRate(s.Lo) {
		return nil, fmt.Errorf("lr slice lo %v: must be finite and > 0", s.Lo)
	}
	if s.Lo > s.Hi {
		return nil, fmt.Errorf("lr slice [%v, %v]: lo must be <= hi", s.Lo, s.Hi)
	}
	return fill(groups, on, func(i int) float64 {
		if n == 1 {
			return s.Hi
		}
		return s.Lo * math.Pow(s.Hi/s.Lo, float64(i)/float64(n-1))
	})
}

// Rates implements Spread.
func (p PerGroup) Rates(groups, trained []string) ([]float64, error) {
	on, err := checkGroups(groups, trained)
	if err != nil {
		return nil, err
	}
	index := map[string]int{}
	for i, g := range groups {
		index[g] = i
	}
	for _, name := range sortedKeys(p) {
		if _, ok := index[name]; !ok {
			hint := ""
			for _, g := range groups {
				if strings.EqualFold(g, name) {
					hint = fmt.Sprintf("; did you mean %q?", g)
				}
			}
			return nil, fmt.Errorf("lr: unknown group %q%s (valid groups: %s)", name, hint, strings.Join(groups, ", "))
		}
	}
	for _, name := range trained {
		if _, ok := p[name]; !ok {
			return nil, fmt.Errorf("lr: trained group %q has no rate (a per-group lr names every trained group: %s)",
				name, strings.Join(trained, ", "))
		}
	}
	return fill(groups, on, func(i int) float64 { return p[groups[i]] })
}

// checkGroups validates groups and trained and returns which groups are trained.
func checkGroups(groups, trained []string) ([]bool, error) {
	if len(groups) == 0 {
		return nil, fmt.Errorf("lr: the model has no layer groups")
	}
	index := map[string]int{}
	for i, g := range groups {
		if g == "" {
			return nil, fmt.Errorf("lr: layer group %d has an empty name", i)
		}
		if _, dup := index[g]; dup {
			return nil, fmt.Errorf("lr: layer group %q appears twice", g)
		}
		index[g] = i
	}
	if len(trained) == 0 {
		return nil, fmt.Errorf("lr: the stage trains no group")
	}
	on := make([]bool, len(groups))
	for _, t := range trained {
		i, ok := index[t]
		if !ok {
			return nil, fmt.Errorf("lr: trained group %q is not a layer group (valid groups: %s)", t, strings.Join(groups, ", "))
		}
		if on[i] {
			return nil, fmt.Errorf("lr: trained group %q listed twice", t)
		}
		on[i] = true
	}
	return on, nil
}

// fill returns rate(i) for the trained groups and 0 for the others, checking every rate.
func fill(groups []string, on []bool, rate func(i int) float64) ([]float64, error) {
	out := make([]float64, len(groups))
	for i := range groups {
		if !on[i] {
			continue
		}
		r := rate(i)
		if !validRate(r) {
			return nil, fmt.Errorf("lr: group %q gets rate %v: rates must be finite and > 0", groups[i], r)
		}
		out[i] = r
	}
	return out, nil
}

func validRate(r float64) bool { return r > 0 && !math.IsInf(r, 0) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

package finetune

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Finding is what the diagnostics saw going wrong in a run, reported once when first
// seen: a line of metrics.jsonl ({"finding": KIND, ...}) and a Finding hook call. The
// kinds are those of package diagnose: non_finite, loss_exploding, loss_rising, chance,
// grad_vanishing, grad_exploding, dead_relu, update_ratio, overfitting.
type Finding struct {
	Kind    string  `json:"finding"`
	Epoch   int     `json:"epoch"` // over all stages, from 1
	Step    int     `json:"step"`  // optimizer steps over all stages when seen
	Stage   string  `json:"stage"`
	Group   string  `json:"group,omitempty"`  // the layer group, for per-group kinds
	Tensor  string  `json:"tensor,omitempty"` // non_finite: the tensor holding the NaN or Inf
	Value   float64 `json:"value"`            // the number that crossed the limit
	Limit   float64 `json:"limit"`
	Message string  `json:"message"` // what was seen
	Meaning string  `json:"meaning"` // what it means
	// Fix is the change to make, as recipe YAML lines; Repairable says whether
	// diagnostics: {repair: true} (toolkit finetune --repair) applies it by itself.
	Fix        string `json:"fix"`
	Repairable bool   `json:"repairable"`
	// Direction is the fix's: split (the head alone first), lower or higher rates;
	// empty for advice.
	Direction string `json:"direction,omitempty"`
	// NotRepaired says why a fix is not applied: it would undo an earlier repair of
	// the stage, or the stage has been repaired as often as a stage may be.
	NotRepaired string `json:"not_repaired,omitempty"`
}

// WriteText prints the finding for a person: what was seen, what it means, the fix.
func (f Finding) WriteText(w io.Writer) error {
	where := fmt.Sprintf("stage %s, epoch %d, step %d", f.Stage, f.Epoch, f.Step)
	if f.Group != "" {
		where += ", group " + f.Group
	}
	var b strings.Builder
	fmt.Fprintf(&b, "finding %s (%s): %s\n", f.Kind, where, f.Message)
	fmt.Fprintf(&b, "  meaning: %s\n", f.Meaning)
	fmt.Fprintf(&b, "  fix, in the recipe:\n")
	for _, line := range strings.Split(strings.TrimRight(f.Fix, "\n"), "\n") {
		fmt.Fprintf(&b, "    %s\n", line)
	}
	switch {
	case f.Repairable:
		fmt.Fprintf(&b, "  (toolkit finetune --repair, or diagnostics: {repair: true}, applies this fix and carries on)\n")
	case f.NotRepaired != "":
		fmt.Fprintf(&b, "  (not repaired: %s)\n", f.NotRepaired)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Repair is a rewrite of the recipe by diagnostics: {repair: true}: the run went back to
// the start of stage StageIndex and goes on with After in place of Before (the stages
// from that one to the end). A line of metrics.jsonl ({"repair": KIND, ...}).
type Repair struct {
	Kind       string   `json:"repair"` // the kind of the finding repaired
	Epoch      int      `json:"epoch"`
	Step       int      `json:"step"`
	Stage      string   `json:"stage"`
	StageIndex int      `json:"stage_index"`
	Direction  string   `json:"direction,omitempty"` // split, lower or higher (Finding.Direction)
	Before     []string `json:"before"`              // the stages replaced, one YAML line each
	After      []string `json:"after"`
	Recipe     string   `json:"recipe,omitempty"` // where the repaired recipe was written
}

// WriteText prints the change.
func (r Repair) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "repair (%s): back to the start of stage %s (epoch %d); the rest of the recipe becomes:\n", r.Kind, r.Stage, r.Epoch)
	for _, l := range r.Before {
		fmt.Fprintf(&b, "  - %s\n", l)
	}
	for _, l := range r.After {
		fmt.Fprintf(&b, "  + %s\n", l)
	}
	if r.Recipe != "" {
		fmt.Fprintf(&b, "  the repaired recipe is %s\n", r.Recipe)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Record is one line of a run's log (metrics.jsonl): the data summary (the first line), an
// epoch's metrics, a finding, a repair or a notice.
type Record struct {
	Epoch   *EpochMetrics
	Finding *Finding
	Repair  *Repair
	Notice  *Notice
	Data    *DataSummary // the first line: what the run found in its data
}

// MarshalJSON writes the record's one value.
func (r Record) MarshalJSON() ([]byte, error) {
	switch {
	case r.Finding != nil:
		return json.Marshal(r.Finding)
	case r.Repair != nil:
		return json.Marshal(r.Repair)
	case r.Notice != nil:
		return json.Marshal(r.Notice)
	case r.Data != nil:
		return json.Marshal(r.Data)
	}
	return json.Marshal(r.Epoch)
}

// UnmarshalJSON reads a line written by MarshalJSON.
func (r *Record) UnmarshalJSON(raw []byte) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return err
	}
	*r = Record{}
	if _, ok := keys["finding"]; ok {
		r.Finding = &Finding{}
		return json.Unmarshal(raw, r.Finding)
	}
	if _, ok := keys["repair"]; ok {
		r.Repair = &Repair{}
		return json.Unmarshal(raw, r.Repair)
	}
	if _, ok := keys["notice"]; ok {
		r.Notice = &Notice{}
		return json.Unmarshal(raw, r.Notice)
	}
	if _, ok := keys["data"]; ok {
		r.Data = &DataSummary{}
		return json.Unmarshal(raw, r.Data)
	}
	r.Epoch = &EpochMetrics{}
	return json.Unmarshal(raw, r.Epoch)
}

// History returns the metrics of the epochs run so far (after a repair, those of the
// repaired recipe).
func (t *Trainer) History() []EpochMetrics {
	var out []EpochMetrics
	for _, r := range t.log {
		if r.Epoch != nil {
			out = append(out, *r.Epoch)
		}
	}
	return out
}

// Findings returns what the diagnostics reported, in order.
func (t *Trainer) Findings() []Finding {
	var out []Finding
	for _, r := range t.log {
		if r.Finding != nil {
			out = append(out, *r.Finding)
		}
	}
	return out
}

// Repairs returns the repairs made, in order.
func (t *Trainer) Repairs() []Repair {
	var out []Repair
	for _, r := range t.log {
		if r.Repair != nil {
			out = append(out, *r.Repair)
		}
	}
	return out
}

// Log returns the run's records in order: what metrics.jsonl holds.
func (t *Trainer) Log() []Record { return append([]Record(nil), t.log...) }

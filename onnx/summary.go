package onnx

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Summary describes a model for people and tools: the layer table of `toolkit import`.
type Summary struct {
	Producer        string         `json:"producer"`
	ProducerVersion string         `json:"producer_version"`
	IRVersion       int64          `json:"ir_version"`
	Opsets          []OpsetInfo    `json:"opsets"`
	Inputs          []ValueSum     `json:"inputs"`
	Outputs         []ValueSum     `json:"outputs"`
	Layers          []LayerSum     `json:"layers"`
	OpCounts        map[string]int `json:"op_counts"`
	TotalParams     int64          `json:"total_params"`
	Headless        bool           `json:"headless"`
	// HeadlessCut is the tensor to cut a full model at for its base, and HeadPool how
	// its classifier pools the base's output (Head.Pool).
	HeadlessCut string `json:"headless_cut,omitempty"`
	HeadPool    string `json:"head_pool,omitempty"`
	// Groups are the layer groups of `groups: auto` (Blocks), the classifier last for a
	// full model.
	Groups []GroupSum `json:"groups"`
}

// GroupSum is one layer group: its name, layer count and parameter elements.
type GroupSum struct {
	Name   string `json:"name"`
	Layers int    `json:"layers"`
	Params int64  `json:"params"`
}

// OpsetInfo is one operator set import ("" is the default ai.onnx domain).
type OpsetInfo struct {
	Domain  string `json:"domain"`
	Version int64  `json:"version"`
}

// ValueSum is a graph input or output. Shape has "N" for the batch dimension when it is
// symbolic, other symbolic dimensions by name and "?" for unknown ones.
type ValueSum struct {
	Name   string   `json:"name"`
	Shape  []string `json:"shape"`
	Layout string   `json:"layout,omitempty"` // NCHW or NHWC, for 4-D inputs
}

// LayerSum is one node: its output shape (as in ValueSum), the number of parameter
// elements (float initializers) it consumes, and its suggested layer group (Blocks).
type LayerSum struct {
	Name   string   `json:"name"`
	Op     string   `json:"op"`
	Shape  []string `json:"output_shape"`
	Params int64    `json:"params"`
	Group  string   `json:"group"`
}

// Summarize describes m. Output shapes come from shape inference for the declared
// input shapes (batch kept symbolic) or, where that is not possible, from the model's
// value infos; unknown shapes are nil.
func Summarize(m *Model) (*Summary, error) {
	if m == nil || m.Graph == nil {
		return nil, errors.New("summarize: no graph")
	}
	g := m.Graph
	s := &Summary{
		Producer:        m.ProducerName,
		ProducerVersion: m.ProducerVersion,
		IRVersion:       m.IRVersion,
		OpCounts:        map[string]int{},
	}
	for _, op := range m.OpsetImports {
		d := op.Domain
		if d == "ai.onnx" {
			d = ""
		}
		s.Opsets = append(s.Opsets, OpsetInfo{Domain: d, Version: op.Version})
	}
	si := symbolicShapes(m)
	shapeOf := func(name string) []string {
		if si != nil {
			if d, ok := si.shapes[name]; ok {
				return dimStrings(d)
			}
		}
		if v := g.ValueInfoOf(name); v != nil && v.HasShape {
			return dimStrings(v.Shape)
		}
		return nil
	}
	for _, v := range g.RealInputs() {
		vs := ValueSum{Name: v.Name}
		if v.HasShape {
			vs.Shape = dimStrings(v.Shape)
			vs.Layout = layout(g, v)
		}
		s.Inputs = append(s.Inputs, vs)
	}
	for _, v := range g.Outputs {
		s.Outputs = append(s.Outputs, ValueSum{Name: v.Name, Shape: shapeOf(v.Name)})
	}
	group := map[string]string{}
	params := paramNames(g)
	inGroup := map[*Tensor]bool{}
	for _, b := range Blocks(m) {
		gs := GroupSum{Name: b.Name, Layers: len(b.Nodes)}
		for _, n := range b.Nodes {
			group[n] = b.Name
		}
		for _, p := range b.Params {
			if t := params[p]; t != nil && !inGroup[t] {
				inGroup[t] = true
				gs.Params += int64(t.NumElements())
			}
		}
		s.Groups = append(s.Groups, gs)
	}
	counted := map[string]bool{}
	for _, n := range g.Nodes {
		l := LayerSum{Name: n.Name, Op: n.OpType, Group: group[n.Name]}
		if len(n.Outputs) > 0 {
			l.Shape = shapeOf(n.Outputs[0])
		}
		if !isParamAlias(n, params) {
			for _, in := range n.Inputs {
				if t := params[in]; t != nil && !counted[in] {
					counted[in] = true
					l.Params += int64(len(t.Floats))
				}
			}
		}
		s.TotalParams += l.Params
		s.OpCounts[n.OpType]++
		s.Layers = append(s.Layers, l)
	}
	if h, err := FindHead(m); err == nil {
		s.HeadlessCut, s.HeadPool = h.Cut, h.Pool
	}
	s.Headless = IsHeadless(m)
	if s.Headless {
		s.HeadlessCut, s.HeadPool = "", ""
	}
	return s, nil
}

func dimStrings(ds []Dim) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		switch {
		case d.Value > 0:
			out[i] = strconv.FormatInt(d.Value, 10)
		case i == 0 && d.Param != "":
			out[i] = "N"
		case d.Param != "":
			out[i] = d.Param
		default:
			out[i] = "?"
		}
	}
	return out
}

// layout guesses whether a 4-D image input is NCHW or NHWC: NHWC when the graph starts
// by transposing it with perm [0 3 1 2], or when its last dimension is 1 or 3 (channels)
// and its second is not.
func layout(g *Graph, v *ValueInfo) string {
	if len(v.Shape) != 4 {
		return ""
	}
	for _, c := range g.Consumers(v.Name) {
		if c.OpType == "Transpose" {
			p := c.AttrInts("perm", nil)
			if len(p) == 4 && p[0] == 0 && p[1] == 3 && p[2] == 1 && p[3] == 2 {
				return "NHWC"
			}
		}
	}
	isCh := func(d Dim) bool { return d.Value == 1 || d.Value == 3 }
	if isCh(v.Shape[3]) && !isCh(v.Shape[1]) {
		return "NHWC"
	}
	return "NCHW"
}

// WriteText prints the summary as an aligned table with totals.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Producer:    %s %s\n", orDash(s.Producer), s.ProducerVersion)
	fmt.Fprintf(&b, "IR version:  %d\n", s.IRVersion)
	var ops []string
	for _, o := range s.Opsets {
		d := o.Domain
		if d == "" {
			d = "ai.onnx"
		}
		ops = append(ops, fmt.Sprintf("%s %d", d, o.Version))
	}
	fmt.Fprintf(&b, "Opsets:      %s\n", orDash(strings.Join(ops, ", ")))
	for _, v := range s.Inputs {
		fmt.Fprintf(&b, "Input:       %s %s %s\n", v.Name, shapeText(v.Shape), v.Layout)
	}
	for _, v := range s.Outputs {
		fmt.Fprintf(&b, "Output:      %s %s\n", v.Name, shapeText(v.Shape))
	}
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tOP\tOUTPUT SHAPE\tPARAMS\tGROUP\t")
	for _, l := range s.Layers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", l.Name, l.Op, shapeText(l.Shape), thousands(l.Params), orDash(l.Group))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b.Reset()
	names := make([]string, 0, len(s.OpCounts))
	for op := range s.OpCounts {
		names = append(names, op)
	}
	sort.Slice(names, func(i, j int) bool {
		if s.OpCounts[names[i]] != s.OpCounts[names[j]] {
			return s.OpCounts[names[i]] > s.OpCounts[names[j]]
		}
		return names[i] < names[j]
	})
	var counts []string
	for _, op := range names {
		counts = append(counts, fmt.Sprintf("%s %d", op, s.OpCounts[op]))
	}
	fmt.Fprintf(&b, "\nLayers:      %d (%s)\n", len(s.Layers), strings.Join(counts, ", "))
	fmt.Fprintf(&b, "Parameters:  %s\n", thousands(s.TotalParams))
	var groups []string
	for _, g := range s.Groups {
		groups = append(groups, fmt.Sprintf("%s (%d layers, %s)", g.Name, g.Layers, thousands(g.Params)))
	}
	fmt.Fprintf(&b, "Groups:      %s\n", orDash(strings.Join(groups, ", ")))
	switch {
	case s.Headless:
		b.WriteString("Headless:    yes (no classifier)\n")
	case s.HeadlessCut != "":
		fmt.Fprintf(&b, "Headless:    no (cut at %q for the base; the classifier pools: %s)\n", s.HeadlessCut, s.HeadPool)
	default:
		b.WriteString("Headless:    no\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shapeText(s []string) string {
	if s == nil {
		return "?"
	}
	return "[" + strings.Join(s, " ") + "]"
}

// thousands formats n with comma separators: 20024384 -> "20,024,384".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

package onnx

import (
	"fmt"
)

// Window2D is the resolved geometry of a 2-D convolution or pooling window over an
// NCHW input: index 0 is the height axis, 1 the width axis. Pads are explicit (auto_pad
// resolved) and may differ at the two ends; Out is the output's spatial size.
type Window2D struct {
	Kernel, Strides, Dilations, PadBegin, PadEnd, Out [2]int
	// CeilMode: the output size was rounded up (pooling only); the last window starts
	// inside the input or its left padding.
	CeilMode bool
	// CountIncludePad: AveragePool divides by the full window, padding included.
	CountIncludePad bool
}

// window is the geometry over any number of spatial axes.
type window struct {
	kernel, strides, dilations, padBegin, padEnd, out []int64
	ceil, countIncludePad                             bool
}

// ConvWindow resolves the window of a Conv node for input shape x (NCHW) and weight
// shape w (M, C/group, kH, kW).
func ConvWindow(n *Node, x, w []int64) (Window2D, error) {
	if len(x) != 4 {
		return Window2D{}, fmt.Errorf("node %q (%s): only 2-D spatial convolutions (4-D NCHW input) are supported, input is %v", n.Name, n.OpType, x)
	}
	if len(w) != 4 {
		return Window2D{}, fmt.Errorf("node %q (%s): weight is %v, want 4-D (M, C/group, kH, kW)", n.Name, n.OpType, w)
	}
	win, err := convWindow(n, x, w)
	if err != nil {
		return Window2D{}, fmt.Errorf("node %q (%s): %w", n.Name, n.OpType, err)
	}
	return win.to2D(), nil
}

// PoolWindow resolves the window of a MaxPool, AveragePool or LpPool node for input
// shape x (NCHW).
func PoolWindow(n *Node, x []int64) (Window2D, error) {
	if len(x) != 4 {
		return Window2D{}, fmt.Errorf("node %q (%s): only 2-D spatial pooling (4-D NCHW input) is supported, input is %v", n.Name, n.OpType, x)
	}
	win, err := poolWindow(n, x)
	if err != nil {
		return Window2D{}, fmt.Errorf("node %q (%s): %w", n.Name, n.OpType, err)
	}
	return win.to2D(), nil
}

func (w window) to2D() Window2D {
	var r Window2D
	for i := 0; i < 2; i++ {
		r.Kernel[i] = int(w.kernel[i])
		r.Strides[i] = int(w.strides[i])
		r.Dilations[i] = int(w.dilations[i])
		r.PadBegin[i] = int(w.padBegin[i])
		r.PadEnd[i] = int(w.padEnd[i])
		r.Out[i] = int(w.out[i])
	}
	r.CeilMode = w.ceil
	r.CountIncludePad = w.countIncludePad
	return r
}

// convWindow resolves a Conv window over any number of spatial axes.
func convWindow(n *Node, x, w []int64) (window, error) {
	if len(x) < 3 {
		return window{}, fmt.Errorf("input is %v, want (N, C, spatial...)", x)
	}
	if len(w) != len(x) {
		return window{}, fmt.Errorf("input is %v and weight %v: ranks differ", x, w)
	}
	kernel := w[2:]
	if ks := n.AttrInts("kernel_shape", nil); ks != nil {
		if len(ks) != len(kernel) {
			return window{}, fmt.Errorf("kernel_shape %v does not fit weight %v", ks, w)
		}
		for i := range ks {
			if ks[i] != kernel[i] {
				return window{}, fmt.Errorf("kernel_shape %v does not match weight %v", ks, w)
			}
		}
	}
	return resolveWindow(n, x[2:], kernel, false)
}

// poolWindow resolves a pooling window over any number of spatial axes.
func poolWindow(n *Node, x []int64) (window, error) {
	if len(x) < 3 {
		return window{}, fmt.Errorf("input is %v, want (N, C, spatial...)", x)
	}
	ks := n.AttrInts("kernel_shape", nil)
	if ks == nil {
		return window{}, fmt.Errorf("kernel_shape attribute missing")
	}
	if len(ks) != len(x)-2 {
		return window{}, fmt.Errorf("kernel_shape %v does not fit input %v", ks, x)
	}
	return resolveWindow(n, x[2:], ks, true)
}

// resolveWindow applies auto_pad, pads, strides, dilations and (for pooling) ceil_mode
// and count_include_pad to input spatial size in and kernel k.
func resolveWindow(n *Node, in, k []int64, pool bool) (window, error) {
	r := len(in)
	w := window{
		kernel:    append([]int64(nil), k...),
		strides:   ones(r),
		dilations: ones(r),
		padBegin:  make([]int64, r),
		padEnd:    make([]int64, r),
		out:       make([]int64, r),
	}
	for _, v := range k {
		if v < 1 {
			return w, fmt.Errorf("kernel %v: sizes must be positive", k)
		}
	}
	if s := n.AttrInts("strides", nil); s != nil {
		if len(s) != r {
			return w, fmt.Errorf("strides %v: want %d values", s, r)
		}
		for _, v := range s {
			if v < 1 {
				return w, fmt.Errorf("strides %v: must be positive", s)
			}
		}
		copy(w.strides, s)
	}
	if d := n.AttrInts("dilations", nil); d != nil {
		if len(d) != r {
			return w, fmt.Errorf("dilations %v: want %d values", d, r)
		}
		for _, v := range d {
			if v < 1 {
				return w, fmt.Errorf("dilations %v: must be positive", d)
			}
		}
		copy(w.dilations, d)
	}
	if pool {
		w.ceil = n.AttrInt("ceil_mode", 0) != 0
		w.countIncludePad = n.OpType == "AveragePool" && n.AttrInt("count_include_pad", 0) != 0
	}
	autoPad := n.AttrString("auto_pad", "NOTSET")
	if autoPad == "" {
		autoPad = "NOTSET"
	}
	pads := n.AttrInts("pads", nil)
	if pads != nil && autoPad == "NOTSET" {
		if len(pads) != 2*r {
			return w, fmt.Errorf("pads %v: want %d values", pads, 2*r)
		}
		for _, v := range pads {
			if v < 0 {
				return w, fmt.Errorf("pads %v: must not be negative", pads)
			}
		}
		copy(w.padBegin, pads[:r])
		copy(w.padEnd, pads[r:])
	}
	for i := 0; i < r; i++ {
		s := w.strides[i]
		dk := (w.kernel[i]-1)*w.dilations[i] + 1
		switch autoPad {
		case "NOTSET":
			avail := in[i] + w.padBegin[i] + w.padEnd[i] - dk
			if avail < 0 {
				return w, fmt.Errorf("window %d (kernel %d, dilation %d) is larger than the padded input %d on spatial axis %d",
					dk, w.kernel[i], w.dilations[i], in[i]+w.padBegin[i]+w.padEnd[i], i)
			}
			if w.ceil {
				w.out[i] = (avail+s-1)/s + 1
				// The last window must start inside the input or the left padding.
				if (w.out[i]-1)*s >= in[i]+w.padBegin[i] {
					w.out[i]--
				}
			} else {
				w.out[i] = avail/s + 1
			}
		case "VALID":
			if in[i] < dk {
				return w, fmt.Errorf("window %d (kernel %d, dilation %d) is larger than the input %d on spatial axis %d",
					dk, w.kernel[i], w.dilations[i], in[i], i)
			}
			w.out[i] = (in[i]-dk)/s + 1
		case "SAME_UPPER", "SAME_LOWER":
			w.out[i] = (in[i] + s - 1) / s
			total := (w.out[i]-1)*s + dk - in[i]
			if total < 0 {
				total = 0
			}
			if autoPad == "SAME_UPPER" {
				w.padBegin[i] = total / 2
			} else {
				w.padBegin[i] = total - total/2
			}
			w.padEnd[i] = total - w.padBegin[i]
		default:
			return w, fmt.Errorf("auto_pad %q: want NOTSET, VALID, SAME_UPPER or SAME_LOWER", autoPad)
		}
	}
	return w, nil
}

func ones(n int) []int64 {
	s := make([]int64, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

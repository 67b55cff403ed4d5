package headbuilder

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Pooling modes: how the base's output becomes one feature vector per example.
const (
	PoolFlatten = "flatten" // Flatten(axis=1): every value of [N C H W] (or [N F]) is a feature
	PoolAvg     = "avg"     // GlobalAveragePool, then Flatten: C features
	PoolMax     = "max"     // GlobalMaxPool, then Flatten: C features
)

// Activations of the hidden layers.
const (
	ActReLU      = "relu"
	ActLeakyReLU = "leaky_relu" // alpha LeakyReLUAlpha
	ActTanh      = "tanh"
	ActSigmoid   = "sigmoid"
	ActNone      = "none" // no activation: the hidden layers are purely linear
)

// Initialisation schemes for the weights (biases always start at zero).
const (
	InitHe     = "he"
	InitGlorot = "glorot"
)

// LeakyReLUAlpha is the negative slope of the leaky_relu activation: ONNX's and
// PyTorch's default (Keras's LeakyReLU defaults to 0.3).
const LeakyReLUAlpha = 0.01

var (
	validPools       = []string{PoolFlatten, PoolAvg, PoolMax}
	validActivations = []string{ActReLU, ActLeakyReLU, ActTanh, ActSigmoid, ActNone}
	validInits       = []string{InitHe, InitGlorot}
)

// Spec describes a classification head: the `head:` section of the config.
//
// The head is, in order: the pooling (Pool), then for each width in Dense a hidden
// layer Gemm -> activation -> Dropout, then the classifier Gemm to Classes logits.
// With no hidden layers and Dropout > 0, the dropout is applied to the pooled
// features, just before the classifier (Keras's GlobalAveragePooling -> Dropout ->
// Dense); otherwise it follows each hidden activation, never the logits.
type Spec struct {
	// Pool is flatten, avg or max; empty means flatten.
	Pool string
	// Dense lists the widths of the hidden layers, first to last; empty for none.
	Dense []int
	// Activation of every hidden layer: relu, leaky_relu, tanh, sigmoid or none;
	// empty means relu. The logits have none.
	Activation string
	// Dropout is the drop probability, in [0, 1); 0 adds no Dropout nodes.
	Dropout float64
	// Classes is the number of logits, at least 2.
	Classes int
	// Init is he or glorot; empty means he. See the package documentation.
	Init string
	// Seed seeds the weight initialisation; equal specs give bit-identical weights.
	Seed uint64
}

// withDefaults fills in the documented defaults of empty fields.
func (s Spec) withDefaults() Spec {
	if s.Pool == "" {
		s.Pool = PoolFlatten
	}
	if s.Activation == "" {
		s.Activation = ActReLU
	}
	if s.Init == "" {
		s.Init = InitHe
	}
	return s
}

// Validate checks every field and returns all problems found, one per line, each
// naming its config key, e.g.
//
//	head.classes: must be at least 2, got 0
//	head.pool: unknown "mean"; valid: flatten, avg, max
func (s Spec) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if s.Pool != "" && !contains(validPools, s.Pool) {
		bad("head.pool: unknown %q; valid: %s", s.Pool, strings.Join(validPools, ", "))
	}
	for i, w := range s.Dense {
		if w < 1 {
			bad("head.dense[%d]: must be at least 1, got %d", i, w)
		}
	}
	if s.Activation != "" && !contains(validActivations, s.Activation) {
		bad("head.activation: unknown %q; valid: %s", s.Activation, strings.Join(validActivations, ", "))
	}
	if math.IsNaN(s.Dropout) || s.Dropout < 0 || s.Dropout >= 1 {
		bad("head.dropout: must be in [0, 1), got %s", strconv.FormatFloat(s.Dropout, 'g', -1, 64))
	}
	if s.Classes < 2 {
		bad("head.classes: must be at least 2, got %d", s.Classes)
	}
	if s.Init != "" && !contains(validInits, s.Init) {
		bad("head.init: unknown %q; valid: %s", s.Init, strings.Join(validInits, ", "))
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Prefix starts the name of every node, tensor and initializer the head adds, except
// the output tensor Logits.
const Prefix = "head."

// Logits is the name of the head's output: the model's single graph output, [N, classes].
const Logits = "logits"

// BatchDim is the symbolic name of the batch dimension in the head's value infos.
const BatchDim = "N"

// Names of the head's parts. Hidden layer i (from 0) is dense<i>, act<i>, dropout<i>.
func denseName(i int) string   { return Prefix + "dense" + strconv.Itoa(i) }
func actName(i int) string     { return Prefix + "act" + strconv.Itoa(i) }
func dropoutName(i int) string { return Prefix + "dropout" + strconv.Itoa(i) }

const (
	poolName    = Prefix + "pool"
	flattenName = Prefix + "flatten"
	logitsName  = Prefix + "logits" // the classifier node and its parameters' prefix
	ratioSuffix = ".ratio"
)

// layerNames returns the parameter prefix of each Gemm of the head: the hidden
// layers, then the classifier.
func layerNames(s Spec) []string {
	names := make([]string, 0, len(s.Dense)+1)
	for i := range s.Dense {
		names = append(names, denseName(i))
	}
	return append(names, logitsName)
}

// ParamNames lists the head's trainable parameters in graph order: for each hidden
// layer i its "head.dense<i>.weight" ([out, in], PyTorch Linear layout) and
// "head.dense<i>.bias", then "head.logits.weight" and "head.logits.bias". The
// dropout ratio constants are not parameters and are not listed.
func ParamNames(spec Spec) []string {
	var names []string
	for _, l := range layerNames(spec) {
		names = append(names, l+".weight", l+".bias")
	}
	return names
}

// IsHeadParam reports whether name is a trainable parameter of a head made by this
// package: a name starting with "head." that is not a dropout ratio constant
// ("head.dropout<i>.ratio").
func IsHeadParam(name string) bool {
	return strings.HasPrefix(name, Prefix) && !IsHeadConstant(name)
}

// IsHeadConstant reports whether name is a constant initializer of the head that
// must never be trained: the Dropout ratio inputs "head.dropout<i>.ratio" of
// opset 12 and newer.
func IsHeadConstant(name string) bool {
	rest, ok := strings.CutPrefix(name, Prefix+"dropout")
	if !ok {
		return false
	}
	digits, ok := strings.CutSuffix(rest, ratioSuffix)
	if !ok || digits == "" {
		return false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

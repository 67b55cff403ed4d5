package finetune

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Config is a fine-tuning recipe: the base model, the head, the layer groups, the
// optimizer, the stages, the data and where the run goes. Its YAML key names are the
// toolkit's interface (see the README); Default gives a config with every default set.
type Config struct {
	Seed      uint64          `mapstructure:"seed" yaml:"seed"`
	Model     ModelConfig     `mapstructure:"model" yaml:"model"`
	Head      HeadConfig      `mapstructure:"head" yaml:"head"`
	Groups    any             `mapstructure:"groups" yaml:"groups"`
	Optimizer OptimizerConfig `mapstructure:"optimizer" yaml:"optimizer"`
	Loss      LossConfig      `mapstructure:"loss" yaml:"loss"`
	Stages    []StageConfig   `mapstructure:"stages" yaml:"stages"`
	Data      DataConfig      `mapstructure:"data" yaml:"data"`
	Output    OutputConfig    `mapstructure:"output" yaml:"output"`
	// EarlyStopping ends a stage when the validation loss has not improved by 1e-4
	// for Patience epochs (0 disables); the next stage then starts.
	EarlyStopping EarlyStoppingConfig `mapstructure:"early_stopping" yaml:"early_stopping"`
	// Diagnostics watches the run for failing training (see Finding); on by default.
	Diagnostics DiagnosticsConfig `mapstructure:"diagnostics" yaml:"diagnostics"`
}

// ModelConfig names the base model and the input size the head is built for.
type ModelConfig struct {
	ONNX  string      `mapstructure:"onnx" yaml:"onnx"`
	CutAt string      `mapstructure:"cut_at" yaml:"cut_at"`
	Input InputConfig `mapstructure:"input" yaml:"input"`
}

// InputConfig is the model's input size (one image, without the batch).
type InputConfig struct {
	Channels int `mapstructure:"channels" yaml:"channels"`
	Height   int `mapstructure:"height" yaml:"height"`
	Width    int `mapstructure:"width" yaml:"width"`
}

// HeadConfig is the classification head put on the base.
type HeadConfig struct {
	Pool       string  `mapstructure:"pool" yaml:"pool"`
	Dense      []int   `mapstructure:"dense" yaml:"dense"`
	Activation string  `mapstructure:"activation" yaml:"activation"`
	Dropout    float64 `mapstructure:"dropout" yaml:"dropout"`
	Classes    int     `mapstructure:"classes" yaml:"classes"`
	Init       string  `mapstructure:"init" yaml:"init"`
}

// GroupConfig is one explicit layer group: globs over initializer names.
type GroupConfig struct {
	Name  string   `mapstructure:"name" yaml:"name"`
	Match []string `mapstructure:"match" yaml:"match"`
}

// OptimizerConfig chooses the optimizer and its hyper-parameters.
type OptimizerConfig struct {
	Name        string  `mapstructure:"name" yaml:"name"`
	WeightDecay float64 `mapstructure:"weight_decay" yaml:"weight_decay"`
	Momentum    float64 `mapstructure:"momentum" yaml:"momentum"`
	Nesterov    bool    `mapstructure:"nesterov" yaml:"nesterov"`
	Beta1       float64 `mapstructure:"beta1" yaml:"beta1"`
	Beta2       float64 `mapstructure:"beta2" yaml:"beta2"`
	Eps         float64 `mapstructure:"eps" yaml:"eps"`
	// ClipNorm clips the global gradient norm of the trained parameters (0: off).
	ClipNorm float64 `mapstructure:"clip_norm" yaml:"clip_norm"`
}

// LossConfig configures the softmax cross-entropy.
type LossConfig struct {
	LabelSmoothing float64 `mapstructure:"label_smoothing" yaml:"label_smoothing"`
}

// StageConfig is one stage of the recipe.
type StageConfig struct {
	Name   string `mapstructure:"name" yaml:"name"`
	Epochs int    `mapstructure:"epochs" yaml:"epochs"`
	// Train is "all" or a list of group names.
	Train any `mapstructure:"train" yaml:"train"`
	// LR is a number, {max, factor}, {slice: [lo, hi]} or a rate per group name.
	LR any `mapstructure:"lr" yaml:"lr"`
	// Schedule is a name or {name: ..., options...}.
	Schedule any `mapstructure:"schedule" yaml:"schedule"`
	// Gradual unfreezes one more group each epoch from the top down, starting from
	// the groups listed in Train (ULMFiT's gradual unfreezing).
	Gradual bool `mapstructure:"gradual" yaml:"gradual"`
}

// DataConfig says where the images are and how they are prepared.
type DataConfig struct {
	Format     string           `mapstructure:"format" yaml:"format"`
	Train      string           `mapstructure:"train" yaml:"train"`
	Val        string           `mapstructure:"val" yaml:"val"`
	ValSplit   float64          `mapstructure:"val_split" yaml:"val_split"`
	Test       string           `mapstructure:"test" yaml:"test"`
	Labels     LabelsConfig     `mapstructure:"labels" yaml:"labels"`
	BatchSize  int              `mapstructure:"batch_size" yaml:"batch_size"`
	Preprocess PreprocessConfig `mapstructure:"preprocess" yaml:"preprocess"`
	Augment    AugmentConfig    `mapstructure:"augment" yaml:"augment"`
	Workers    int              `mapstructure:"workers" yaml:"workers"`
	// OnBadImage is "fail" (default) or "skip" (skip and count undecodable images).
	OnBadImage string `mapstructure:"on_bad_image" yaml:"on_bad_image"`
	// FeatureCache is "auto" (default) or "off". With auto, an epoch that trains only
	// groups above a frozen part of the network, on images that nothing random changes
	// (no augmentation), computes the frozen part's output once per image and trains
	// on the stored activations.
	FeatureCache string `mapstructure:"feature_cache" yaml:"feature_cache"`
	// Classes, when set, are the class names of an IDX data set.
	Classes []string `mapstructure:"classes" yaml:"classes"`
}

// LabelsConfig names the label files of IDX data; empty: derived from the image files'
// names (train-images-idx3-ubyte.gz -> train-labels-idx1-ubyte.gz).
type LabelsConfig struct {
	Train string `mapstructure:"train" yaml:"train"`
	Val   string `mapstructure:"val" yaml:"val"`
	Test  string `mapstructure:"test" yaml:"test"`
}

// PreprocessConfig is the exporter's input normalisation.
type PreprocessConfig struct {
	Mode string    `mapstructure:"mode" yaml:"mode"`
	Mean []float64 `mapstructure:"mean" yaml:"mean"`
	Std  []float64 `mapstructure:"std" yaml:"std"`
}

// AugmentConfig is the training-time augmentation.
type AugmentConfig struct {
	HFlip   bool `mapstructure:"hflip" yaml:"hflip"`
	PadCrop int  `mapstructure:"pad_crop" yaml:"pad_crop"`
}

// OutputConfig says where the run folder goes.
type OutputConfig struct {
	Dir string `mapstructure:"dir" yaml:"dir"`
}

// EarlyStoppingConfig stops a stage early.
type EarlyStoppingConfig struct {
	Patience int `mapstructure:"patience" yaml:"patience"`
}

// DiagnosticsConfig configures the detectors of failing runs. In YAML, `diagnostics: off`
// turns them off and `diagnostics: {repair: true}` repairs the recipe when a finding with
// a known fix fires. The zero value is the default: detection on, no repair.
type DiagnosticsConfig struct {
	Off    bool `mapstructure:"off" yaml:"off"`
	Repair bool `mapstructure:"repair" yaml:"repair"`
	// Every is how often, in steps, the per-group statistics are sampled (0: every 5
	// steps, and the first 3 of each stage); the loss and accuracy are watched at every
	// step.
	Every int `mapstructure:"every" yaml:"every"`
}

// diagnosticsFromScalar reads `diagnostics: off` (or on, true, false) into a
// DiagnosticsConfig.
func diagnosticsFromScalar(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(DiagnosticsConfig{}) {
		return data, nil
	}
	switch v := data.(type) {
	case bool:
		return DiagnosticsConfig{Off: !v}, nil
	case string:
		switch strings.ToLower(v) {
		case "off", "false", "no":
			return DiagnosticsConfig{Off: true}, nil
		case "on", "true", "yes", "":
			return DiagnosticsConfig{}, nil
		}
		return nil, fmt.Errorf("diagnostics: %q; want off, on, or {repair: true, every: N}", v)
	}
	return data, nil
}

// Default returns a config with every default filled in; LoadConfig starts from it.
func Default() Config {
	return Config{
		Seed:      42,
		Model:     ModelConfig{Input: InputConfig{Channels: 3, Height: 224, Width: 224}},
		Head:      HeadConfig{Pool: "flatten", Dense: []int{256}, Activation: "relu", Dropout: 0.5, Init: "he"},
		Optimizer: OptimizerConfig{Name: "adam", Momentum: 0.9, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		Data: DataConfig{
			Format: "imagefolder", BatchSize: 32, OnBadImage: "fail", FeatureCache: "auto",
			Preprocess: PreprocessConfig{Mode: "torch"},
		},
		Output: OutputConfig{Dir: "runs/run"},
	}
}

// LoadConfig reads a YAML recipe. Unknown keys are errors that name the file, the line
// and the nearest valid key; TOOLKIT_* environment variables override the file's values
// (TOOLKIT_DATA_BATCH_SIZE for data.batch_size). Relative paths in the file are taken
// relative to the file's folder.
func LoadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(raw, path)
	if err != nil {
		return nil, err
	}
	cfg.resolvePaths(filepath.Dir(path))
	return cfg, nil
}

// ParseConfig reads a YAML recipe from memory; name is used in error messages. Paths
// are left as written.
func ParseConfig(raw []byte, name string) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(doc.Content) > 0 {
		if err := checkKeys(doc.Content[0], reflect.TypeOf(Config{}), ""); err != nil {
			return nil, fmt.Errorf("%s:%w", name, err)
		}
	}
	v := viper.New()
	v.SetConfigType("yaml")
	v.SetEnvPrefix("TOOLKIT")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if err := v.ReadConfig(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cfg := Default()
	// Keys the file leaves out keep their defaults; environment variables can set
	// any key, present in the file or not.
	for _, key := range leafKeys(reflect.TypeOf(Config{}), "") {
		if d := lookupDefault(cfg, key); d != nil {
			v.SetDefault(key, d)
		}
	}
	if err := v.Unmarshal(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		dc.WeaklyTypedInput = true
		dc.ZeroFields = true
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(diagnosticsFromScalar, dc.DecodeHook)
	}); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &cfg, nil
}

func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.Model.ONNX)
	abs(&c.Data.Train)
	abs(&c.Data.Val)
	abs(&c.Data.Test)
	abs(&c.Data.Labels.Train)
	abs(&c.Data.Labels.Val)
	abs(&c.Data.Labels.Test)
	abs(&c.Output.Dir)
}

// checkKeys walks a YAML mapping against the struct type that decodes it and reports
// the first key that is not a field, with its line and the nearest valid key.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // a type mismatch: the decoder reports it
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]; tag != "" {
				fields[tag] = f.Type
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			ft, ok := fields[key.Value]
			if !ok {
				names := make([]string, 0, len(fields))
				for name := range fields {
					names = append(names, name)
				}
				sort.Strings(names)
				return fmt.Errorf("%d: unknown key %q; did you mean %q? (valid keys: %s)",
					key.Line, join(path, key.Value), nearest(key.Value, names), strings.Join(names, ", "))
			}
			if err := checkKeys(val, ft, join(path, key.Value)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, item := range n.Content {
			if err := checkKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// nearest returns the candidate closest to s: an abbreviation of it (lr for
// learning_rate), else the one at the smallest edit distance.
func nearest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := editDistance(s, c)
		if c == initials(s) || s == initials(c) {
			d = 0
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// initials returns the first letters of the words of an underscored name.
func initials(s string) string {
	out := ""
	for _, w := range strings.Split(s, "_") {
		if w != "" {
			out += w[:1]
		}
	}
	return out
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// leafKeys lists the dotted keys of the struct fields that hold values (not nested
// structs), for viper's defaults and environment lookups.
func leafKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if tag == "" {
			continue
		}
		// diagnostics is one key: `diagnostics: off` is a scalar where a map may stand.
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(DiagnosticsConfig{}) {
			keys = append(keys, leafKeys(f.Type, join(prefix, tag))...)
		} else {
			keys = append(keys, join(prefix, tag))
		}
	}
	return keys
}

func lookupDefault(cfg Config, key string) any {
	v := reflect.ValueOf(cfg)
	for _, part := range strings.Split(key, ".") {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if strings.Split(t.Field(i).Tag.Get("mapstructure"), ",")[0] == part {
				v = v.Field(i)
				break
			}
		}
	}
	return v.Interface()
}

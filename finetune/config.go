package finetune

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"toolkit/dataset"
	"toolkit/finetune/schedule"
	"toolkit/internal/yamlnode"
)

//go:generate go run ./internal/recipegen -readme ../README.md -schema ../docs/recipe.schema.json

// Config is a fine-tuning recipe: the base model, the head, the layer groups, the
// optimizer, the stages, the data and where the run goes. It is the recipe's one
// schema: its YAML keys (the yaml tags) are the toolkit's interface, its field comments
// say what each key does, the types that decode themselves (GroupsConfig, TrainConfig,
// schedule.Rates, schedule.Spec, DiagnosticsConfig) own their YAML forms, and Default
// holds the defaults. The README's reference of every key and docs/recipe.schema.json
// (for editors) are generated from it: go generate ./finetune.
//
// Tags beside yaml: enum lists a key's valid values, required marks a key without a
// default, default shows a default that is not a plain value.
type Config struct {
	// Seed seeds everything random: the head's weights, shuffling, augmentation, dropout, val_split.
	Seed uint64 `yaml:"seed"`
	// Model is the base model and its input.
	Model ModelConfig `yaml:"model"`
	// Head is the new classification head put on the base.
	Head HeadConfig `yaml:"head"`
	// Groups splits the base's parameters into layer groups, earliest first; the head is always the last group, head.
	Groups GroupsConfig `yaml:"groups"`
	// TrainBN keeps the BatchNormalization layers of frozen groups training, as fastai's train_bn does: their scales and shifts are updated at the rate their group would have, with batch statistics. Off: a frozen group stays exactly as it was, as a frozen Keras layer does.
	TrainBN bool `yaml:"train_bn"`
	// Precision is the arithmetic of the matrix products and convolutions: float32, or bf16 (bfloat16 operands, float32 accumulation, on CPUs with AVX512_BF16: Zen 4, Zen 5, Sapphire Rapids and later; refused elsewhere). The activations that the backward pass reads only through products or for a Relu's mask are kept in bfloat16 between the passes (half their memory), and so are the inputs of the batch normalisations, whose gradients then read them rounded (as PyTorch's autocast does; the forward pass and its statistics use the float32 values). Weights, optimizer state, the loss, normalisation statistics and the exported model stay float32. It is the process's while the run trains.
	Precision string `yaml:"precision" enum:"float32,bf16"`
	// Optimizer is the optimizer; each group has its own state, carried from stage to stage.
	Optimizer OptimizerConfig `yaml:"optimizer"`
	// Loss is the softmax cross-entropy's options.
	Loss LossConfig `yaml:"loss"`
	// Stages is the list of stages, trained in order, each for its epochs, with its groups, rates and schedule.
	Stages []StageConfig `yaml:"stages" required:"true"`
	// EarlyStopping ends a stage when the monitored validation metric (output.best) has
	// not improved by 1e-4 for patience epochs; the next stage then starts.
	EarlyStopping EarlyStoppingConfig `yaml:"early_stopping"`
	// Diagnostics watches the run for failing training (see the README's Diagnostics) and can repair the recipe.
	Diagnostics DiagnosticsConfig `yaml:"diagnostics"`
	// EMA keeps an exponential moving average of the weights, with which the model is validated, tested and exported (timm's ModelEmaV2, Keras' use_ema).
	EMA EMAConfig `yaml:"ema"`
	// Data is where the images are and how they are prepared.
	Data DataConfig `yaml:"data"`
	// Output is where the run folder goes.
	Output OutputConfig `yaml:"output"`
}

// ModelConfig names the base model and the input size the head is built for.
type ModelConfig struct {
	// ONNX is the base model's file: a headless base, or a full model with cut_at.
	ONNX string `yaml:"onnx" required:"true"`
	// CutAt is the node or tensor to cut the model at; empty: use the graph's output.
	CutAt string `yaml:"cut_at"`
	// Input is the size of one input image.
	Input InputConfig `yaml:"input"`
}

// InputConfig is the model's input size (one image, without the batch).
type InputConfig struct {
	// Channels is the number of channels: 1 (grey) or 3 (RGB).
	Channels int `yaml:"channels"`
	// Height is the images' height after resizing, in pixels.
	Height int `yaml:"height"`
	// Width is the images' width after resizing, in pixels.
	Width int `yaml:"width"`
}

// The tasks of head.task.
const (
	TaskClassification = "classification"
	TaskMultilabel     = "multilabel"
)

// HeadConfig is the classification head put on the base.
type HeadConfig struct {
	// Pool is how the base's feature map becomes a vector: flatten, avg (global average) or max.
	Pool string `yaml:"pool" enum:"flatten,avg,max"`
	// Dense is the hidden layers' widths, in order; [] for none.
	Dense []int `yaml:"dense"`
	// Activation is the function after each hidden layer.
	Activation string `yaml:"activation" enum:"relu,leaky_relu,tanh,sigmoid,none"`
	// Dropout is the rate of the dropout before each dense layer, in [0, 1).
	Dropout float64 `yaml:"dropout"`
	// Classes is the number of classes (the training data's class folders), or of labels for multilabel.
	Classes int `yaml:"classes" required:"true"`
	// Task is classification (one class per image: softmax probabilities, the cross-entropy) or multilabel (any number of labels per image, data.format: csv: a sigmoid probability per label, the binary cross-entropy, per-label thresholds tuned on the validation data).
	Task string `yaml:"task" enum:"classification,multilabel"`
	// Init is how the dense layers' weights are initialised: he (Kaiming) or glorot (Xavier).
	Init string `yaml:"init" enum:"he,glorot"`
}

// GroupsConfig is the groups key: how the base's parameters split into layer groups,
// earliest first (the head is always added last, as the group head). In YAML: auto
// (the default), a preset's name, or a list of {name, match}.
type GroupsConfig struct {
	// Preset is auto (split the base at its pooling layers: block1, block2, ...; also
	// when empty) or the name of a preset from package models (vgg16, vgg19, ...).
	Preset string
	// List names the groups (Preset then empty).
	List []GroupConfig
}

// TrainConfig is a stage's train key: all, or the names of the groups it trains.
type TrainConfig struct {
	All bool // every group
	// Groups are the groups by name (All false). Nil with All false is a missing train
	// key; an empty list trains nothing (and is an error).
	Groups []string
}

// Train returns a train key naming the groups.
func Train(groups ...string) TrainConfig { return TrainConfig{Groups: append([]string{}, groups...)} }

// TrainAll returns the train key all.
func TrainAll() TrainConfig { return TrainConfig{All: true} }

// GroupConfig is one explicit layer group: globs over initializer names.
type GroupConfig struct {
	// Name is the group's name, as train and per-group lr refer to it (case kept).
	Name string `yaml:"name" required:"true"`
	// Match lists globs over the base's initializer names (path.Match syntax, such as "features.0.*").
	Match []string `yaml:"match" required:"true"`
}

// OptimizerConfig chooses the optimizer and its hyper-parameters.
type OptimizerConfig struct {
	// Name is the optimizer: sgd (with momentum), adam or adamw (decoupled weight decay).
	Name string `yaml:"name" enum:"sgd,adam,adamw"`
	// WeightDecay is the L2 penalty (sgd, adam) or the decoupled decay (adamw, PyTorch's default 0.01); frozen groups get none.
	WeightDecay float64 `yaml:"weight_decay" default:"0 (adamw: 0.01)"`
	// Momentum is the momentum of sgd.
	Momentum float64 `yaml:"momentum"`
	// Nesterov makes the momentum of sgd Nesterov's.
	Nesterov bool `yaml:"nesterov"`
	// Beta1 is adam's first-moment decay (cycled by the onecycle schedule).
	Beta1 float64 `yaml:"beta1"`
	// Beta2 is adam's second-moment decay.
	Beta2 float64 `yaml:"beta2"`
	// Eps is adam's epsilon.
	Eps float64 `yaml:"eps"`
	// ClipNorm clips the global gradient norm of the trained parameters (0: off).
	ClipNorm float64 `yaml:"clip_norm"`
	// NoDecay lists the parameters weight_decay leaves alone (timm's and fastai's default): bias (every parameter of one dimension or none that is not a normalisation layer's: the biases of Conv, Gemm and MatMul-Add, layer scales), norm (the scales and shifts of BatchNormalization, LayerNormalization, InstanceNormalization and GroupNormalization), or a glob over the parameters' ONNX names (head.*); [] decays every parameter.
	NoDecay []string `yaml:"no_decay" default:"[bias, norm]"`
}

// LossConfig configures the training loss: the softmax cross-entropy, or for
// head.task: multilabel the binary cross-entropy. The validation loss stays the plain
// one, as Keras' class_weight changes the training loss alone.
type LossConfig struct {
	// LabelSmoothing spreads this much of each label's weight over all classes, in [0, 1).
	LabelSmoothing float64 `yaml:"label_smoothing"`
	// ClassWeights weighs each class's examples in the training loss: balanced (n / (classes x count) from the training images, scikit-learn's compute_class_weight) or a weight per class in the classes' order; the loss is the weighted mean, as PyTorch's CrossEntropyLoss(weight) computes it. Not set: every class 1.
	ClassWeights WeightsConfig `yaml:"class_weights,omitempty" default:"not set"`
	// FocalGamma multiplies each example's loss by (1 - p)^gamma, p its probability of the right class (the focal loss, Lin et al. 2017; 2 is usual), so that well-classified examples weigh less; 0: off.
	FocalGamma float64 `yaml:"focal_gamma"`
	// PosWeight weighs each label's positive examples in the binary cross-entropy of head.task: multilabel (PyTorch's BCEWithLogitsLoss pos_weight): balanced (negatives / positives of each label in the training data) or a weight per label in the labels' order. Not set: 1.
	PosWeight WeightsConfig `yaml:"pos_weight,omitempty" default:"not set"`
}

// StageConfig is one stage of the recipe.
type StageConfig struct {
	// Name names the stage in the output and in lr-find --stage.
	Name string `yaml:"name" default:"stage1, stage2, ..."`
	// Epochs is the stage's length, at least 1.
	Epochs int `yaml:"epochs" required:"true"`
	// Train is the groups the stage trains: all, or a list such as [head]; the others are frozen.
	Train TrainConfig `yaml:"train" required:"true"`
	// LR is the trained groups' base rates: a number, {max, factor}, {slice: [lo, hi]} or a rate per group.
	LR schedule.Rates `yaml:"lr" required:"true"`
	// Schedule shapes the rates over the stage's steps: a name, or {name: ..., options}.
	Schedule schedule.Spec `yaml:"schedule,omitempty"`
	// Gradual unfreezes one more group each epoch from the top down, starting from
	// the groups listed in train (ULMFiT's gradual unfreezing).
	Gradual bool `yaml:"gradual,omitempty"`
	// SWA averages the weights at the end of the stage's last swa epochs and makes the average the model when the stage ends, its BatchNorm statistics recomputed over the training data (stochastic weight averaging, PyTorch's swa_utils); 0: off.
	SWA int `yaml:"swa,omitempty"`
}

// DataConfig says where the images are and how they are prepared.
type DataConfig struct {
	// Format is the images' format: imagefolder (PNG or JPEG files, one folder per class), csv (a CSV of image files and their labels, the files relative to the CSV: file,label, file,label1;label2 for multilabel, or one 0/1 column per label) or idx (MNIST's format).
	Format string `yaml:"format" enum:"imagefolder,csv,idx"`
	// Train is the training images' folder (or CSV or IDX file).
	Train string `yaml:"train" required:"true"`
	// Val is the validation images' folder (or CSV or IDX file); or set val_split.
	Val string `yaml:"val"`
	// ValSplit holds this fraction of the training images out for validation, in [0, 1); 0: none.
	ValSplit float64 `yaml:"val_split"`
	// Test is the test images' folder (or CSV or IDX file), measured after training.
	Test string `yaml:"test"`
	// Labels names the label files of IDX data.
	Labels LabelsConfig `yaml:"labels"`
	// BatchSize is the number of images in a batch, at least 1.
	BatchSize int `yaml:"batch_size"`
	// Accumulate runs each optimizer step's batch as this many parts of batch_size images one after the other and adds up their gradients (gradient accumulation: Lightning's accumulate_grad_batches, fastai's GradientAccumulation): the step is that of one batch accumulate x batch_size large, with the memory of a batch_size one (BatchNorm's batch statistics excepted, which are each part's).
	Accumulate int `yaml:"accumulate"`
	// Preprocess is the input normalisation the base was trained with.
	Preprocess PreprocessConfig `yaml:"preprocess"`
	// Augment is the training-time augmentation.
	Augment AugmentConfig `yaml:"augment"`
	// Sampler is how each training epoch draws its images: shuffle (each image once, in a new order) or balanced (as many draws, with replacement, each class equally likely: PyTorch's WeightedRandomSampler with 1/count weights, for imbalanced classes).
	Sampler string `yaml:"sampler" enum:"shuffle,balanced"`
	// Workers is the number of image-decoding workers; 0: one per CPU.
	Workers int `yaml:"workers"`
	// OnBadImage says what an undecodable image does: fail (the run stops, naming it) or skip (it is skipped and counted).
	OnBadImage string `yaml:"on_bad_image" enum:"fail,skip"`
	// JPEGDraft decodes a training JPEG at 1/2, 1/4 or 1/8 of its size in the DCT domain when its crop or resize reduces it at least that much (Pillow's draft mode): a 12-megapixel photo several times faster, its pixels slightly different from a full decode's. Validation, test, evaluate and predict always decode in full.
	JPEGDraft bool `yaml:"jpeg_draft"`
	// EvalCacheMB keeps the validation and test images, decoded and resized (with data.preprocess.resize set), in memory up to this many megabytes, so that epochs after the first skip decoding them (a 224x224 image takes 0.15 MB); 0: off.
	EvalCacheMB int `yaml:"eval_cache_mb"`
	// FeatureCache is the cache of a frozen base's outputs, auto or off. With auto, an
	// epoch that trains only groups above a frozen part of the network, on images that
	// nothing random changes (no augmentation), computes the frozen part's output once
	// per image and trains on the stored activations.
	FeatureCache string `yaml:"feature_cache" enum:"auto,off"`
	// Classes are the class names of an IDX data set, in label order (empty: the labels' numbers).
	Classes []string `yaml:"classes"`
}

// LabelsConfig names the label files of IDX data; empty: derived from the image files'
// names (train-images-idx3-ubyte.gz -> train-labels-idx1-ubyte.gz).
type LabelsConfig struct {
	// Train is the training labels' file.
	Train string `yaml:"train"`
	// Val is the validation labels' file.
	Val string `yaml:"val"`
	// Test is the test labels' file.
	Test string `yaml:"test"`
}

// PreprocessConfig is how an image becomes the model's input: the resize, and the
// normalisation the base was trained with. Evaluation and test use it as it is; training
// adds the augmentation. It is stored in the exported model, so that evaluate and predict
// prepare images the same way.
type PreprocessConfig struct {
	// Mode is the normalisation: caffe (BGR, 0-255, mean subtracted), torch (0-1, mean and std), tf (-1 to 1) or none (0-1).
	Mode string `yaml:"mode" enum:"caffe,torch,tf,none"`
	// Mean is the per-channel mean (torch and caffe; empty: ImageNet's); one value for all channels, or one per channel.
	Mean []float64 `yaml:"mean"`
	// Std is the per-channel standard deviation (torch only; empty: ImageNet's), as mean.
	Std []float64 `yaml:"std"`
	// Resize is how a photo of another size becomes the input size, as torchvision does it on PIL images: squish (stretch to the size), crop (the shorter side to size/crop_pct, then the centre: the ImageNet evaluation transform, Resize(256) + CenterCrop(224)) or pad (fit inside, keeping the aspect ratio, black around). Not set: the stretch of the toolkit's first versions (bilinear without antialiasing, on floats), for recipes written before this key.
	Resize string `yaml:"resize,omitempty" enum:"squish,crop,pad" default:"not set"`
	// CropPct is the centre crop's share of the resized photo for resize: crop, in (0, 1] (timm's crop_pct; 0.875 is 224 of 256).
	CropPct float64 `yaml:"crop_pct"`
	// Interpolation is the resampling filter of resize and random_resized_crop: bilinear or bicubic, antialiased when downscaling, as Pillow.
	Interpolation string `yaml:"interpolation,omitempty" enum:"bilinear,bicubic" default:"bilinear"`
}

// AugmentConfig is the training-time augmentation, each step as torchvision does it on a
// PIL image, in this order: random_resized_crop (instead of the resize), pad_crop, hflip,
// vflip, rotate, color_jitter, trivial_augment, normalisation, random_erasing; then mixup
// or cutmix over the batch. Validation and test images get the resize alone.
type AugmentConfig struct {
	// RandomResizedCrop replaces the resize in training: a random box of the photo, its area a fraction in scale and its aspect ratio (width/height) in ratio, resized to the input (torchvision's RandomResizedCrop). true: scale [0.08, 1], ratio [0.75, 1.3333]; or {scale: [lo, hi], ratio: [lo, hi]}.
	RandomResizedCrop RandomResizedCropConfig `yaml:"random_resized_crop"`
	// PadCrop pads each training image by this many pixels and crops it back at a random place; 0: off.
	PadCrop int `yaml:"pad_crop"`
	// HFlip flips half the training images left to right.
	HFlip bool `yaml:"hflip"`
	// VFlip turns half the training images upside down.
	VFlip bool `yaml:"vflip"`
	// Rotate rotates each training image by a random angle in [-rotate, rotate] degrees (RandomRotation; nearest neighbour, black corners).
	Rotate float64 `yaml:"rotate"`
	// ColorJitter changes brightness, contrast and saturation by random factors in [1-v, 1+v] and the hue by up to hue (at most 0.5), in a random order (ColorJitter).
	ColorJitter ColorJitterConfig `yaml:"color_jitter"`
	// TrivialAugment applies one random operation of TrivialAugmentWide at a random strength to each training image.
	TrivialAugment bool `yaml:"trivial_augment"`
	// RandomErasing erases a random box of each training image with this probability (RandomErasing; the box set to 0 after normalisation).
	RandomErasing float64 `yaml:"random_erasing"`
	// Mixup blends each training image with the one before it in the batch, by a weight drawn per batch from Beta(mixup, mixup) (0.2 is usual); the loss takes the blended targets, accuracy the dominant label.
	Mixup float64 `yaml:"mixup"`
	// Cutmix pastes a box of the image before it in the batch into each training image, its area drawn per batch from Beta(cutmix, cutmix) (1.0 is usual); with mixup also set, each batch takes one of the two.
	Cutmix float64 `yaml:"cutmix"`
}

// RandomResizedCropConfig is the random_resized_crop key: false (off, the default), true
// (torchvision's scale and ratio) or {scale, ratio}.
type RandomResizedCropConfig struct {
	// On turns it on.
	On bool `yaml:"-"`
	// Scale is the range of the box's area, as a fraction of the photo's: 0 < lo <= hi <= 1.
	Scale [2]float64 `yaml:"scale"`
	// Ratio is the range of the box's aspect ratio (width/height), drawn log-uniformly: 0 < lo <= hi.
	Ratio [2]float64 `yaml:"ratio"`
}

// ColorJitterConfig is torchvision's ColorJitter; 0 leaves a property alone.
type ColorJitterConfig struct {
	// Brightness draws the brightness factor from [max(0, 1-v), 1+v].
	Brightness float64 `yaml:"brightness"`
	// Contrast draws the contrast factor from [max(0, 1-v), 1+v].
	Contrast float64 `yaml:"contrast"`
	// Saturation draws the saturation factor from [max(0, 1-v), 1+v].
	Saturation float64 `yaml:"saturation"`
	// Hue draws the hue shift from [-v, v], a fraction of the colour circle, v at most 0.5.
	Hue float64 `yaml:"hue"`
}

// OutputConfig says where the run folder goes.
type OutputConfig struct {
	// Dir is the run folder: model.onnx, best.onnx, checkpoint/, metrics.jsonl, curves.png.
	Dir string `yaml:"dir"`
	// CheckpointEvery is the least time between two epoch checkpoints, in seconds: an epoch that ends sooner after the last one is not saved, unless it ends its stage; 0: every epoch. Ctrl-C saves whenever it comes.
	CheckpointEvery float64 `yaml:"checkpoint_every"`
	// Best is the validation metric the run monitors, as Keras' callbacks' monitor and mode: best.onnx holds its best epoch (a tie keeps the earlier), early stopping and schedule: plateau watch it. A metric (val_loss, the lowest, as Keras' ModelCheckpoint monitors by default; val_acc, val_macro_f1 or val_map, the highest) or {metric, mode: min | max}.
	Best MonitorConfig `yaml:"best"`
	// TensorBoard writes TensorBoard event files into the run folder's tensorboard/ (tensorboard --logdir RUN_DIR): per epoch the losses, accuracies and other validation metrics, each group's rate and mean gradient norm; per sampled step the loss, and each group's rate, gradient norm and update ratio (Keras' TensorBoard callback, Lightning's TensorBoardLogger).
	TensorBoard bool `yaml:"tensorboard"`
}

// EarlyStoppingConfig stops a stage early.
type EarlyStoppingConfig struct {
	// Patience is the number of epochs without an improvement of the monitored metric (output.best) by 1e-4 before the stage ends; 0: off.
	Patience int `yaml:"patience"`
	// RestoreBest puts back, when early stopping ends a stage, the weights of the stage's best epoch by the monitored metric (Keras' restore_best_weights), before the next stage starts.
	RestoreBest bool `yaml:"restore_best"`
}

// DiagnosticsConfig configures the detectors of failing runs. In YAML, `diagnostics: off`
// turns them off and `diagnostics: {repair: true}` repairs the recipe when a finding with
// a known fix fires. The zero value is the default: detection on, no repair.
type DiagnosticsConfig struct {
	// Off turns the detectors off (`diagnostics: off`).
	Off bool `yaml:"-"`
	// Repair rewrites the rest of the recipe when a finding with a known fix fires,
	// and goes on from the start of the failing stage (as --repair).
	Repair bool `yaml:"repair"`
	// Every is how often, in steps, the per-group statistics are sampled (0: every 5
	// steps, and the first 3 of each stage); the loss and accuracy are watched at every
	// step.
	Every int `yaml:"every"`
}

// Default returns a config with every default filled in; LoadConfig starts from it.
func Default() Config {
	return Config{
		Seed:      42,
		Precision: "float32",
		Model:     ModelConfig{Input: InputConfig{Channels: 3, Height: 224, Width: 224}},
		Head:      HeadConfig{Pool: "flatten", Dense: []int{256}, Activation: "relu", Dropout: 0.5, Init: "he", Task: TaskClassification},
		Optimizer: optimizerDefaults("adam"),
		Data: DataConfig{
			Format: "imagefolder", BatchSize: 32, Accumulate: 1, OnBadImage: "fail", FeatureCache: "auto", JPEGDraft: true, EvalCacheMB: 256, Sampler: "shuffle",
			Preprocess: PreprocessConfig{Mode: "torch", CropPct: dataset.DefaultCropPct},
		},
		Output: OutputConfig{Dir: "runs/run", CheckpointEvery: 60, Best: Monitor("val_loss")},
	}
}

// LoadConfig reads a YAML recipe. Mistakes are errors that name the file, the line and
// the key (an unknown key with the nearest valid one); TOOLKIT_* environment variables
// override the file's values (TOOLKIT_DATA_BATCH_SIZE for data.batch_size). Relative
// paths in the file are taken relative to the file's folder.
func LoadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(raw, path)
	if err != nil {
		return nil, err
	}
	cfg.ResolvePaths(filepath.Dir(path))
	return cfg, nil
}

// ParseConfig reads a YAML recipe from memory over Default, then the TOOLKIT_*
// environment variables; name is used in error messages. Paths are left as written.
// Keys are read as written (group names keep their case).
func ParseConfig(raw []byte, name string) (*Config, error) {
	cfg := Default()
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			return nil, fmt.Errorf("%s:%s: %s", name, m[1], m[2])
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if root := yamlnode.Resolve(&doc); !yamlnode.IsNull(root) {
		if root.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s:%d: the recipe is %s; want a mapping of %s", name, root.Line, yamlnode.Describe(root), strings.Join(topKeys(), ", "))
		}
		if err := yamlnode.Decode(root, &cfg); err != nil {
			return nil, fmt.Errorf("%s:%w", name, err)
		}
	}
	if err := cfg.applyEnv(); err != nil {
		return nil, err
	}
	// Mistakes that need more than one key (an augmentation against the batch size, say)
	// are found here too, to report them at their line.
	if key, err := cfg.crossError(); err != nil {
		if l := yamlnode.Line(&doc, key); l > 0 {
			return nil, fmt.Errorf("%s:%d: %s: %w", name, l, key, err)
		}
		return nil, fmt.Errorf("%s: %s: %w", name, key, err)
	}
	return &cfg, nil
}

// yamlLine picks the line out of the YAML parser's syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func topKeys() []string {
	var keys []string
	for _, f := range yamlnode.Fields(reflect.TypeFor[Config]()) {
		keys = append(keys, f.Key)
	}
	return keys
}

// applyEnv sets every key that a TOOLKIT_* environment variable gives (through viper:
// TOOLKIT_DATA_BATCH_SIZE for data.batch_size), the variable's value read as YAML
// (text as it is for text keys): TOOLKIT_HEAD_DENSE='[512, 256]', TOOLKIT_DIAGNOSTICS=off.
func (c *Config) applyEnv() error {
	v := viper.New()
	v.SetEnvPrefix("TOOLKIT")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for _, k := range envKeys(reflect.ValueOf(c).Elem(), "") {
		if !v.IsSet(k.key) {
			continue
		}
		raw := v.GetString(k.key)
		env := "TOOLKIT_" + strings.ToUpper(strings.ReplaceAll(k.key, ".", "_"))
		if err := decodeEnv(raw, k.value); err != nil {
			var e *yamlnode.Error
			if errors.As(err, &e) {
				c := *e
				c.Line = 0
				err = &c
			}
			return fmt.Errorf("%s=%s: %w", env, raw, yamlnode.Under(err, nil, k.key))
		}
	}
	return nil
}

type envKey struct {
	key   string
	value reflect.Value
}

// envKeys lists the keys that hold a value: every field but the structs that only group
// keys (model, head, ...), whose fields are listed instead. A type that decodes itself
// is one value, and its fields, if it has keys of its own (diagnostics.repair), follow it.
func envKeys(v reflect.Value, prefix string) []envKey {
	var keys []envKey
	for _, f := range yamlnode.Fields(v.Type()) {
		key, fv := yamlnode.Join(prefix, f.Key), v.FieldByIndex(f.Index)
		custom := fv.Addr().Type().Implements(reflect.TypeFor[yaml.Unmarshaler]())
		if custom || fv.Kind() != reflect.Struct {
			keys = append(keys, envKey{key, fv})
		}
		if fv.Kind() == reflect.Struct {
			keys = append(keys, envKeys(fv, key)...)
		}
	}
	return keys
}

func decodeEnv(raw string, v reflect.Value) error {
	custom := v.Addr().Type().Implements(reflect.TypeFor[yaml.Unmarshaler]())
	if v.Kind() == reflect.String && !custom {
		v.SetString(raw)
		return nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(raw), &doc); err != nil {
		return fmt.Errorf("not YAML: %w", err)
	}
	return yamlnode.Decode(&doc, v.Addr().Interface())
}

// ResolvePaths makes the recipe's relative paths (model, data, output) absolute under dir.
func (c *Config) ResolvePaths(dir string) {
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

// accumulate is the number of parts a step's batch runs in (data.accumulate, 1 when unset).
func (c DataConfig) accumulate() int { return max(c.Accumulate, 1) }

// stepBatch is the images of an optimizer step: batch_size times accumulate.
func (c DataConfig) stepBatch() int { return c.BatchSize * c.accumulate() }

// Package familyfixtures gives tests the torchvision family fixtures: the models that
// tools/make_family_fixtures.py exports from PyTorch with PyTorch's outputs, gradients and
// reference layer groups. They are too large to commit, so the first test that asks for
// them runs the script (with Debian's /usr/bin/python3) into a cache folder named after
// the script's contents, under a file lock: the test packages that share them make them
// once per version of the script. Without Python, torch or torchvision the test is
// skipped, or fails under CI (internal/testref).
//
// TOOLKIT_FAMILY_FIXTURES names a folder the script has already written (for instance
// with --full, the real resnet50, convnext_tiny and vit_b_16) to use instead.
package familyfixtures

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"toolkit/internal/testref"
)

// python is Debian's interpreter, which has torch, torchvision and onnx.
const python = "/usr/bin/python3"

// script is the generator, relative to the repository root.
const script = "tools/make_family_fixtures.py"

// Manifest is the script's manifest.json.
type Manifest struct {
	Torch, Torchvision, ONNX string
	Size                     int
	Full                     bool
	Families                 map[string]*Family
	// Dir is the folder holding the fixtures.
	Dir string `json:"-"`
}

// Family is one family's fixture.
type Family struct {
	Name string `json:"-"`
	// Dir is the family's folder.
	Dir string `json:"-"`
	// Models maps the model files (model_opset13.onnx, model_opset17.onnx,
	// model_fused_opset13.onnx) to their export settings.
	Models map[string]struct {
		Opset int64
		Fused bool
	}
	InputShape  []int `json:"input_shape"`
	OutputShape []int `json:"output_shape"`
	// Params are the parameter names (PyTorch's, the initializer names of the unfused
	// exports); ClassifierParams those of the classifier a headless cut removes.
	Params           []string
	ParamCount       int      `json:"param_count"`
	ClassifierParams []string `json:"classifier_params"`
	// Pool is the pooling of the classifier (onnx.PoolAvg, ...); Preset the layer-group
	// preset of package models for the family.
	Pool, Preset string
	// Stages are the reference layer groups, from PyTorch.
	Stages []Stage
	// GradFiles maps parameter names to their files under grads/.
	GradFiles map[string]string `json:"grad_files"`
	Full      bool
	// TrainReferences says that train_output.npy, train_grad_input.npy, train_grads/
	// and train_running/ hold PyTorch's train() mode pass (BatchNorm batch statistics).
	TrainReferences bool `json:"train_references"`
	// TrainFloat32Error is, per tensor of the train() references ("output", "input
	// gradient", parameter and running statistic names), max|torch float32 - torch
	// float64| / max|torch float64|: how close PyTorch itself gets in float32.
	TrainFloat32Error map[string]float64 `json:"train_float32_error"`
}

// Stage is a reference layer group: stage-level modules and their parameters.
type Stage struct {
	Modules []string
	Params  []string
}

// ModelFiles returns the family's model files, sorted.
func (f *Family) ModelFiles() []string {
	var names []string
	for n := range f.Models {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Path returns the path of a file of the family's folder.
func (f *Family) Path(name ...string) string {
	return filepath.Join(append([]string{f.Dir}, name...)...)
}

// Names returns the family names, sorted.
func (m *Manifest) Names() []string {
	var names []string
	for n := range m.Families {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

var (
	once     sync.Once
	manifest *Manifest
	loadErr  error
	missing  string
)

// Load returns the fixtures, making them on first use.
func Load(t testing.TB) *Manifest {
	t.Helper()
	once.Do(func() { manifest, loadErr, missing = load() })
	if missing != "" {
		testref.Missing(t, "%s", missing)
	}
	if loadErr != nil {
		t.Fatalf("family fixtures: %v", loadErr)
	}
	return manifest
}

func load() (*Manifest, error, string) {
	dir := os.Getenv("TOOLKIT_FAMILY_FIXTURES")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			return nil, err, ""
		}
		if msg := checkPython(); msg != "" {
			return nil, nil, msg
		}
		if dir, err = generate(root); err != nil {
			return nil, err, ""
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err, ""
	}
	m := &Manifest{Dir: dir}
	if err := json.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "manifest.json"), err), ""
	}
	for name, f := range m.Families {
		f.Name, f.Dir = name, filepath.Join(dir, name)
	}
	return m, nil, ""
}

// repoRoot is the folder holding go.mod, above the test's working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

func checkPython() string {
	if _, err := os.Stat(python); err != nil {
		return fmt.Sprintf("the family fixtures need %s with torch, torchvision and onnx (Debian: apt-get install python3-torch python3-torchvision python3-onnx): %v", python, err)
	}
	out, err := exec.Command(python, "-c", "import torch, torchvision, onnx").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("the family fixtures need torch, torchvision and onnx under %s: %v: %s", python, err, strings.TrimSpace(string(out)))
	}
	return ""
}

// generate runs the script into the cache folder of its current contents, unless a
// finished folder is there already, and returns the folder.
func generate(root string) (string, error) {
	src, err := os.ReadFile(filepath.Join(root, script))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(src)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	base := filepath.Join(cache, "toolkit-family-fixtures")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	dir := filepath.Join(base, hex.EncodeToString(sum[:8]))
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
		return dir, nil
	}
	// Older versions of the fixtures (and their locks) are of no use any more.
	if old, _ := filepath.Glob(filepath.Join(base, "*")); len(old) > 0 {
		for _, o := range old {
			if o != dir && o != dir+".lock" {
				os.RemoveAll(o)
			}
		}
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	cmd := exec.Command(python, filepath.Join(root, script), tmp)
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=2")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v\n%s", python, script, err, stderr.String())
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

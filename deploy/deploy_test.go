package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// mpiJob is the part of a Kubeflow MPIJob (kubeflow.org/v2beta1) the toolkit's manifest
// uses, decoded strictly: a key the struct does not know (a misspelling) is an error.
type mpiJob struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		SlotsPerWorker    *int                   `yaml:"slotsPerWorker"`
		MPIImplementation string                 `yaml:"mpiImplementation"`
		RunPolicy         map[string]any         `yaml:"runPolicy"`
		Replicas          map[string]replicaSpec `yaml:"mpiReplicaSpecs"`
	} `yaml:"spec"`
}

type replicaSpec struct {
	Replicas *int `yaml:"replicas"`
	Template struct {
		Spec struct {
			Containers []struct {
				Name         string         `yaml:"name"`
				Image        string         `yaml:"image"`
				Command      []string       `yaml:"command"`
				Resources    map[string]any `yaml:"resources"`
				VolumeMounts []struct {
					Name      string `yaml:"name"`
					MountPath string `yaml:"mountPath"`
				} `yaml:"volumeMounts"`
			} `yaml:"containers"`
			Volumes []struct {
				Name                  string         `yaml:"name"`
				PersistentVolumeClaim map[string]any `yaml:"persistentVolumeClaim"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

// TestMPIJob checks the MPIJob's required fields (the MPI Operator rejects a job
// without them), that the launcher's mpirun starts as many ranks as the workers hold
// slots and runs toolkit finetune, and that every volume mounted is declared.
func TestMPIJob(t *testing.T) {
	raw, err := os.ReadFile("mpijob-finetune.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var job mpiJob
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&job); err != nil {
		t.Fatalf("mpijob-finetune.yaml: %v", err)
	}
	if job.APIVersion != "kubeflow.org/v2beta1" || job.Kind != "MPIJob" || job.Metadata.Name == "" {
		t.Errorf("apiVersion %q kind %q name %q", job.APIVersion, job.Kind, job.Metadata.Name)
	}
	if job.Spec.SlotsPerWorker == nil || job.Spec.MPIImplementation != "OpenMPI" {
		t.Errorf("slotsPerWorker %v, mpiImplementation %q (want OpenMPI, the image's)", job.Spec.SlotsPerWorker, job.Spec.MPIImplementation)
	}
	launcher, ok1 := job.Spec.Replicas["Launcher"]
	worker, ok2 := job.Spec.Replicas["Worker"]
	if !ok1 || !ok2 || len(job.Spec.Replicas) != 2 {
		t.Fatalf("mpiReplicaSpecs %v: want Launcher and Worker", job.Spec.Replicas)
	}
	if launcher.Replicas == nil || *launcher.Replicas != 1 || worker.Replicas == nil || *worker.Replicas < 1 {
		t.Fatalf("replicas: launcher %v, worker %v", launcher.Replicas, worker.Replicas)
	}
	for name, r := range job.Spec.Replicas {
		if len(r.Template.Spec.Containers) != 1 {
			t.Fatalf("%s: %d containers", name, len(r.Template.Spec.Containers))
		}
		c := r.Template.Spec.Containers[0]
		if c.Image == "" || len(c.Command) == 0 {
			t.Errorf("%s: image %q command %v", name, c.Image, c.Command)
		}
		var declared []string
		for _, v := range r.Template.Spec.Volumes {
			declared = append(declared, v.Name)
		}
		for _, m := range c.VolumeMounts {
			if !slices.Contains(declared, m.Name) {
				t.Errorf("%s mounts volume %q, which it does not declare", name, m.Name)
			}
		}
	}
	cmd := launcher.Template.Spec.Containers[0].Command
	np := slices.Index(cmd, "-np")
	if cmd[0] != "mpirun" || np < 0 || np+1 >= len(cmd) {
		t.Fatalf("launcher command %v: want mpirun -np N", cmd)
	}
	if n, err := strconv.Atoi(cmd[np+1]); err != nil || n != *worker.Replicas**job.Spec.SlotsPerWorker {
		t.Errorf("mpirun -np %s, but the workers hold %d x %d slots", cmd[np+1], *worker.Replicas, *job.Spec.SlotsPerWorker)
	}
	tk := slices.Index(cmd, "toolkit")
	if tk < 0 || tk+1 >= len(cmd) || cmd[tk+1] != "finetune" {
		t.Errorf("launcher command %v: want it to run toolkit finetune", cmd)
	}
	if w := worker.Template.Spec.Containers[0].Command; len(w) == 0 || !strings.HasSuffix(w[0], "sshd") {
		t.Errorf("worker command %v: the launcher reaches the workers over SSH (sshd)", w)
	}
}

// TestDockerfile checks the two stages: a build stage that compiles the toolkit with
// the build tag mpi against Open MPI's headers, and a runtime stage with mpirun and
// sshd that copies the binary from it.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]string // the instructions of each stage, continuation lines joined
	for _, line := range strings.Split(strings.ReplaceAll(string(raw), "\\\n", " "), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("an instruction before the first FROM: %q", line)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], line)
	}
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a build stage and a runtime stage", len(stages))
	}
	build, run := strings.Join(stages[0], "\n"), strings.Join(stages[1], "\n")
	name := regexp.MustCompile(`(?m)^FROM \S+ AS (\S+)$`).FindStringSubmatch(build)
	if name == nil {
		t.Fatal("the build stage has no name (FROM image AS name)")
	}
	for _, want := range []string{"libopenmpi-dev", "go build -tags mpi", "./cmd/toolkit"} {
		if !strings.Contains(build, want) {
			t.Errorf("the build stage lacks %q", want)
		}
	}
	for _, want := range []string{"openmpi-bin", "openssh-server", "COPY --from=" + name[1] + " ", "ENTRYPOINT"} {
		if !strings.Contains(run, want) {
			t.Errorf("the runtime stage lacks %q", want)
		}
	}
}

// sbatchLines checks a batch script's bash syntax and first line, and returns its
// #SBATCH options (each before the first command, where Slurm reads them) and text.
func sbatchLines(t *testing.T, path string) (map[string]string, string) {
	t.Helper()
	if out, err := exec.Command("bash", "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("bash -n %s: %v\n%s", path, err, out)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	if !strings.HasPrefix(lines[0], "#!/bin/bash") {
		t.Errorf("%s: first line %q: want #!/bin/bash", path, lines[0])
	}
	sbatch := map[string]string{}
	commands := false
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "#SBATCH "):
			if commands {
				t.Errorf("%s: %q after the first command: Slurm ignores it", path, l)
			}
			k, v, _ := strings.Cut(strings.TrimPrefix(l, "#SBATCH "), "=")
			sbatch[k] = v
		case strings.TrimSpace(l) != "" && !strings.HasPrefix(l, "#"):
			commands = true
		}
	}
	for _, k := range []string{"--job-name", "--cpus-per-task", "--time"} {
		if sbatch[k] == "" {
			t.Errorf("%s: no #SBATCH %s", path, k)
		}
	}
	return sbatch, string(raw)
}

// TestSlurmScript checks the batch script: bash's syntax, the #SBATCH lines Slurm needs
// before the first command, and that it runs toolkit finetune under mpirun on the
// allocation's tasks, resuming when the run has a checkpoint.
func TestSlurmScript(t *testing.T) {
	sbatch, body := sbatchLines(t, "slurm-finetune.sh")
	for _, k := range []string{"--nodes", "--ntasks-per-node"} {
		if sbatch[k] == "" {
			t.Errorf("no #SBATCH %s", k)
		}
	}
	for _, want := range []string{`mpirun --bind-to none -np "$SLURM_NTASKS"`, "toolkit finetune", "--resume", "GOMAXPROCS=$SLURM_CPUS_PER_TASK"} {
		if !strings.Contains(body, want) {
			t.Errorf("the script lacks %q", want)
		}
	}
}

// job is the part of a Kubernetes Job (batch/v1) the toolkit's manifests use, decoded
// strictly: a key the struct does not know (a misspelling) is an error.
type job struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		CompletionMode       string `yaml:"completionMode"`
		Completions          *int   `yaml:"completions"`
		Parallelism          *int   `yaml:"parallelism"`
		BackoffLimit         *int   `yaml:"backoffLimit"`
		BackoffLimitPerIndex *int   `yaml:"backoffLimitPerIndex"`
		Template             struct {
			Spec struct {
				RestartPolicy string `yaml:"restartPolicy"`
				Containers    []struct {
					Name    string   `yaml:"name"`
					Image   string   `yaml:"image"`
					Command []string `yaml:"command"`
					Env     []struct {
						Name  string `yaml:"name"`
						Value string `yaml:"value"`
					} `yaml:"env"`
					Resources    map[string]any `yaml:"resources"`
					VolumeMounts []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
				} `yaml:"containers"`
				Volumes []struct {
					Name                  string         `yaml:"name"`
					PersistentVolumeClaim map[string]any `yaml:"persistentVolumeClaim"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// readJob decodes a Job manifest strictly and checks what every Job needs: its kind,
// a name, one container with an image and a command, a restart policy a Job allows
// (Never or OnFailure), and every volume it mounts declared.
func readJob(t *testing.T, path string) *job {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var j job
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&j); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	pod := j.Spec.Template.Spec
	if j.APIVersion != "batch/v1" || j.Kind != "Job" || j.Metadata.Name == "" {
		t.Errorf("%s: apiVersion %q kind %q name %q", path, j.APIVersion, j.Kind, j.Metadata.Name)
	}
	if pod.RestartPolicy != "Never" && pod.RestartPolicy != "OnFailure" {
		t.Errorf("%s: restartPolicy %q: a Job's pods take Never or OnFailure", path, pod.RestartPolicy)
	}
	if len(pod.Containers) != 1 || pod.Containers[0].Image == "" || len(pod.Containers[0].Command) == 0 {
		t.Fatalf("%s: want one container with an image and a command", path)
	}
	var declared []string
	for _, v := range pod.Volumes {
		declared = append(declared, v.Name)
	}
	for _, m := range pod.Containers[0].VolumeMounts {
		if !slices.Contains(declared, m.Name) {
			t.Errorf("%s mounts volume %q, which it does not declare", path, m.Name)
		}
	}
	return &j
}

// TestIndexedJobs checks the Indexed Jobs of sharded extraction and evaluation and the
// Jobs that merge their parts: each task's shard comes from Kubernetes
// (JOB_COMPLETION_INDEX, and JOB_COMPLETIONS set to spec.completions, which Kubernetes
// does not set), retried alone (backoffLimitPerIndex, which needs restartPolicy Never);
// the merge runs the same command with --merge, on the same volume.
func TestIndexedJobs(t *testing.T) {
	for _, command := range []string{"extract", "evaluate"} {
		t.Run(command, func(t *testing.T) {
			ix := readJob(t, "job-"+command+".yaml")
			merge := readJob(t, "job-"+command+"-merge.yaml")
			s := ix.Spec
			if s.CompletionMode != "Indexed" || s.Completions == nil || *s.Completions < 1 || s.Parallelism == nil || *s.Parallelism < 1 {
				t.Fatalf("completionMode %q, completions %v, parallelism %v: want an Indexed Job of one or more completions", s.CompletionMode, s.Completions, s.Parallelism)
			}
			if s.BackoffLimitPerIndex != nil && s.Template.Spec.RestartPolicy != "Never" {
				t.Errorf("backoffLimitPerIndex needs restartPolicy Never, not %q", s.Template.Spec.RestartPolicy)
			}
			c := s.Template.Spec.Containers[0]
			count := ""
			for _, e := range c.Env {
				if e.Name == "JOB_COMPLETIONS" {
					count = e.Value
				}
			}
			if count != strconv.Itoa(*s.Completions) {
				t.Errorf("env JOB_COMPLETIONS %q, completions %d: the shards would not cover the job", count, *s.Completions)
			}
			if len(c.Command) < 2 || c.Command[0] != "toolkit" || c.Command[1] != command || slices.Contains(c.Command, "--shard") || slices.Contains(c.Command, "--merge") {
				t.Errorf("command %v: want toolkit %s, its shard from the environment", c.Command, command)
			}
			if command == "evaluate" && !slices.Contains(c.Command, "--parts") {
				t.Errorf("command %v: evaluate needs --parts for its part", c.Command)
			}
			m := merge.Spec
			if m.CompletionMode == "Indexed" || m.Completions != nil && *m.Completions != 1 {
				t.Errorf("the merge: completionMode %q, completions %v: want one pod", m.CompletionMode, m.Completions)
			}
			mc := m.Template.Spec.Containers[0]
			if !slices.Equal(mc.Command, append(slices.Clone(c.Command), "--merge")) {
				t.Errorf("the merge runs %v; want the shards' command %v with --merge", mc.Command, c.Command)
			}
			if mc.Image != c.Image || !reflect.DeepEqual(m.Template.Spec.Volumes, s.Template.Spec.Volumes) || !reflect.DeepEqual(mc.VolumeMounts, c.VolumeMounts) {
				t.Errorf("the merge's image or volumes differ from the shards'")
			}
		})
	}
}

// TestSlurmArrays checks the job array scripts of sharded extraction and evaluation:
// bash's syntax, the #SBATCH lines (an array from 0), and what each runs: the script is
// run as one task of its array with a stand-in toolkit on the PATH, which records its
// arguments and environment; the header shows the merge after the array.
func TestSlurmArrays(t *testing.T) {
	for _, c := range []struct {
		script, command string
		args, want      []string
	}{
		{"slurm-extract.sh", "extract", []string{"m.onnx", "imgs", "out"}, []string{"extract", "m.onnx", "--data", "imgs", "-o", "out", "--batch-size", "32"}},
		{"slurm-extract.sh", "extract", []string{"r.yaml", "imgs", "out"}, []string{"extract", "-c", "r.yaml", "--data", "imgs", "-o", "out", "--batch-size", "32"}},
		{"slurm-evaluate.sh", "evaluate", []string{"m.onnx", "test", "out"}, []string{"evaluate", "m.onnx", "--data", "test", "--tta", "--most-confused", "--top-losses", "16", "--plot", "out/confusion.png", "--parts", "out/parts"}},
	} {
		t.Run(c.script+" "+c.args[0], func(t *testing.T) {
			sbatch, body := sbatchLines(t, c.script)
			if !regexp.MustCompile(`^0-[0-9]+$`).MatchString(sbatch["--array"]) {
				t.Errorf("#SBATCH --array=%s: want 0-N", sbatch["--array"])
			}
			for _, want := range []string{"--dependency=afterok:$jid", "toolkit " + c.command, "--merge", "TOOLKIT_SHARD="} {
				if !strings.Contains(body, want) {
					t.Errorf("the script lacks %q", want)
				}
			}
			bin := t.TempDir()
			record := filepath.Join(bin, "record")
			fake := "#!/bin/bash\nprintf '%s\\n' \"$@\" > " + record + "\necho \"GOMAXPROCS=$GOMAXPROCS\" >> " + record + "\n"
			if err := os.WriteFile(filepath.Join(bin, "toolkit"), []byte(fake), 0o755); err != nil {
				t.Fatal(err)
			}
			run := exec.Command("bash", append([]string{c.script}, c.args...)...)
			run.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "SLURM_CPUS_PER_TASK=8", "SLURM_ARRAY_TASK_ID=1", "SLURM_ARRAY_TASK_COUNT=4")
			if out, err := run.CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			raw, err := os.ReadFile(record)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSpace(string(raw)), "\n")
			if want := append(slices.Clone(c.want), "GOMAXPROCS=8"); !slices.Equal(got, want) {
				t.Errorf("the script ran toolkit %q, want %q", got, want)
			}
			if err := exec.Command("bash", c.script).Run(); err == nil {
				t.Error("the script ran without its arguments")
			}
		})
	}
}

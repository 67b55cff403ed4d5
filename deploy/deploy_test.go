package deploy

import (
	"os"
	"os/exec"
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

// TestSlurmScript checks the batch script: bash's syntax, the #SBATCH lines Slurm needs
// before the first command, and that it runs toolkit finetune under mpirun on the
// allocation's tasks, resuming when the run has a checkpoint.
func TestSlurmScript(t *testing.T) {
	const path = "slurm-finetune.sh"
	if out, err := exec.Command("bash", "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("bash -n %s: %v\n%s", path, err, out)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	if !strings.HasPrefix(lines[0], "#!/bin/bash") {
		t.Errorf("first line %q: want #!/bin/bash", lines[0])
	}
	sbatch := map[string]string{}
	commands := false
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "#SBATCH "):
			if commands {
				t.Errorf("%q after the first command: Slurm ignores it", l)
			}
			k, v, _ := strings.Cut(strings.TrimPrefix(l, "#SBATCH "), "=")
			sbatch[k] = v
		case strings.TrimSpace(l) != "" && !strings.HasPrefix(l, "#"):
			commands = true
		}
	}
	for _, k := range []string{"--job-name", "--nodes", "--ntasks-per-node", "--cpus-per-task", "--time"} {
		if sbatch[k] == "" {
			t.Errorf("no #SBATCH %s", k)
		}
	}
	body := string(raw)
	for _, want := range []string{`mpirun --bind-to none -np "$SLURM_NTASKS"`, "toolkit finetune", "--resume", "GOMAXPROCS=$SLURM_CPUS_PER_TASK"} {
		if !strings.Contains(body, want) {
			t.Errorf("the script lacks %q", want)
		}
	}
}

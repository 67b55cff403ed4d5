package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
)

// printReport reads the JSON lines that compare.sh collected (one [Result] per
// benchmark run, from this program, tools/bench/torch_bench.py and
// tools/bench/ort_bench.js), whose labels name the environment and the round, and
// prints for each workload every implementation's best time per round, and the
// toolkit's ratio to PyTorch and to ONNX Runtime in each round (the reference's best
// time divided by the toolkit's: above 1, the toolkit is faster) with their median.
func printReport(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var rs []Result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("%s: %v in %q", path, err, line)
		}
		rs = append(rs, r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	type workload struct {
		env, mode   string
		classes     int
		adam        bool
		size, batch int
	}
	var keys []workload
	byKey := map[workload][]Result{}
	for _, r := range rs {
		env, _, _ := strings.Cut(r.Label, ", round")
		k := workload{env, r.Mode, r.Classes, r.Adam, r.Size, r.Batch}
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], r)
	}
	env := "\x00"
	for _, k := range keys {
		if k.env != env {
			env = k.env
			fmt.Printf("\n== %s\n", orDefault(env, "(no label)"))
		}
		name := fmt.Sprintf("%s %dx3x%d", k.mode, k.batch, k.size)
		if k.classes > 0 {
			name += fmt.Sprintf(" +linear%d", k.classes)
		}
		if k.adam {
			name += " +adam"
		}
		fmt.Printf("\n%s\n", name)
		// best[impl][round]
		best := map[string]map[string]float64{}
		var impls, rounds []string
		for _, r := range byKey[k] {
			if best[r.Impl] == nil {
				best[r.Impl] = map[string]float64{}
				impls = append(impls, r.Impl)
			}
			if !slices.Contains(rounds, r.Label) {
				rounds = append(rounds, r.Label)
			}
			best[r.Impl][r.Label] = r.BestSec
		}
		for _, impl := range impls {
			line := fmt.Sprintf("  %-17s", impl)
			for _, rd := range rounds {
				if v, ok := best[impl][rd]; ok {
					line += fmt.Sprintf(" %8.3fs", v)
				}
			}
			if strings.HasPrefix(impl, "toolkit") {
				refs := []string{"pytorch", "onnxruntime"}
				if impl == "toolkit-avx2" {
					refs = []string{"pytorch-avx2", "pytorch", "onnxruntime"}
				}
				for _, ref := range refs {
					var ratios []float64
					for _, rd := range rounds {
						a, okA := best[impl][rd]
						b, okB := best[ref][rd]
						if okA && okB && a > 0 {
							ratios = append(ratios, b/a)
						}
					}
					if len(ratios) == 0 {
						continue
					}
					line += fmt.Sprintf("   vs %s:", ref)
					for _, x := range ratios {
						line += fmt.Sprintf(" %.2f", x)
					}
					slices.Sort(ratios)
					line += fmt.Sprintf(" (median %.2fx)", ratios[len(ratios)/2])
				}
			}
			fmt.Println(line)
		}
	}
	fmt.Println("\nEach column is one round: the best wall time of that command's timed runs. A ratio is the")
	fmt.Println("reference's best time over the toolkit's in the same round (above 1: the toolkit is faster).")
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

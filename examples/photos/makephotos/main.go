// Command makephotos writes the photo set of examples/photos into
// examples/photos/data (or the folder given): JPEG pictures of three kinds of pattern at
// the sizes, aspect ratios and orientations of phone photographs, and one truncated file.
//
//	go run ./examples/photos/makephotos
//	toolkit finetune -c examples/photos/config.yaml
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"toolkit/internal/photogen"
)

func main() {
	dir := flag.String("o", filepath.Join("examples", "photos", "data"), "where to write the photo set")
	seed := flag.Uint64("seed", 1, "the set's seed")
	train := flag.Int("train", photogen.DefaultSplits[0].PerClass, "training pictures per class")
	val := flag.Int("val", photogen.DefaultSplits[1].PerClass, "validation pictures per class")
	test := flag.Int("test", photogen.DefaultSplits[2].PerClass, "test pictures per class")
	flag.Parse()
	splits := []photogen.Split{{Name: "train", PerClass: *train}, {Name: "val", PerClass: *val}, {Name: "test", PerClass: *test}}
	if err := photogen.Write(*dir, splits, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "makephotos:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s: %v, train/val/test\n", *dir, photogen.Classes)
}

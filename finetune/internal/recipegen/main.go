// Command recipegen writes the recipe's JSON Schema and the README's recipe reference
// from finetune.Config (package recipeschema); go generate ./finetune runs it:
//
//	go run ./internal/recipegen -readme ../README.md -schema ../docs/recipe.schema.json
package main

import (
	"flag"
	"fmt"
	"os"

	"toolkit/finetune/internal/recipeschema"
	"toolkit/internal/atomicfile"
)

func main() {
	src := flag.String("src", ".", "the finetune package's folder (its field comments describe the keys)")
	readme := flag.String("readme", "README.md", "the README whose generated section is replaced")
	schema := flag.String("schema", recipeschema.SchemaFile, "the JSON Schema file to write")
	flag.Parse()
	if err := run(*src, *readme, *schema); err != nil {
		fmt.Fprintln(os.Stderr, "recipegen:", err)
		os.Exit(1)
	}
}

func run(src, readmePath, schemaPath string) error {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		return err
	}
	newReadme, schema, err := recipeschema.Generate(src, readme)
	if err != nil {
		return err
	}
	for path, data := range map[string][]byte{readmePath: newReadme, schemaPath: schema} {
		if err := atomicfile.Write(path, func(f *os.File) error {
			_, err := f.Write(data)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// Package recipeschema generates, from the recipe's one schema (finetune.Config: its
// types and yaml tags, its field comments, finetune.Default, and the JSONSchema methods
// of the types that decode themselves), the JSON Schema that editors use for YAML
// completion (docs/recipe.schema.json) and the recipe reference in README.md. The
// program in ../recipegen writes both (go generate ./finetune); this package's test
// fails when the committed files are stale.
package recipeschema

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"toolkit/finetune"
	"toolkit/internal/jsonschema"
	"toolkit/internal/yamlnode"
)

// The README's generated section lies between these lines.
const (
	Begin = "<!-- recipe reference: generated from finetune.Config by go generate ./finetune; edit finetune/config.go, not this -->"
	End   = "<!-- end of the recipe reference -->"
)

// SchemaFile is where the JSON Schema is committed, relative to the repository.
const SchemaFile = "docs/recipe.schema.json"

// Comments reads the field comments of the struct types in the Go package in dir:
// "TypeName.FieldName" to the comment's text.
func Comments(dir string) (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	out := map[string]string{}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		{
			ast.Inspect(f, func(n ast.Node) bool {
				ts, ok := n.(*ast.TypeSpec)
				if !ok {
					return true
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					return false
				}
				for _, field := range st.Fields.List {
					text := ""
					if field.Doc != nil {
						text = field.Doc.Text()
					} else if field.Comment != nil {
						text = field.Comment.Text()
					}
					for _, name := range field.Names {
						out[ts.Name.Name+"."+name.Name] = describe(name.Name, text)
					}
				}
				return false
			})
		}
	}
	return out, nil
}

// describe turns a field's comment into a key's description: "Pool turns the map ..."
// becomes "Turns the map ...", "Channels is 1 or 3." becomes "1 or 3.".
func describe(field, comment string) string {
	text := strings.Join(strings.Fields(comment), " ")
	if rest, ok := strings.CutPrefix(text, field+" "); ok {
		text = rest
		for _, verb := range []string{"is ", "are "} {
			if rest, ok := strings.CutPrefix(text, verb); ok {
				text = rest
				break
			}
		}
	}
	if text == "" {
		return ""
	}
	return strings.ToUpper(text[:1]) + text[1:]
}

// schemer is a type that describes its own YAML forms.
type schemer interface{ JSONSchema() *jsonschema.Schema }

var schemerType = reflect.TypeFor[schemer]()

// Schema builds the recipe's JSON Schema from finetune.Config, with the descriptions
// Comments read.
func Schema(comments map[string]string) (*jsonschema.Schema, error) {
	g := generator{comments: comments}
	def := finetune.Default()
	s, err := g.of(reflect.TypeFor[finetune.Config](), reflect.ValueOf(def))
	if err != nil {
		return nil, err
	}
	s.Schema = "http://json-schema.org/draft-07/schema#"
	s.Title = "toolkit fine-tuning recipe"
	s.Description = "A recipe for toolkit finetune (the README's \"The recipe\"). In a recipe: # yaml-language-server: $schema=<path or URL of this file>"
	return s, nil
}

type generator struct{ comments map[string]string }

// of describes type t, whose default value is def (invalid: none).
func (g generator) of(t reflect.Type, def reflect.Value) (*jsonschema.Schema, error) {
	if t.Implements(schemerType) {
		s := reflect.Zero(t).Interface().(schemer).JSONSchema()
		for i, alt := range s.OneOf {
			if alt.Type == "object" && alt.Properties == nil && alt.AdditionalProperties == nil && t.Kind() == reflect.Struct {
				fields, err := g.object(t, def)
				if err != nil {
					return nil, err
				}
				fields.Description = alt.Description
				s.OneOf[i] = fields
			}
		}
		return s, nil
	}
	switch t.Kind() {
	case reflect.Struct:
		return g.object(t, def)
	case reflect.String:
		return &jsonschema.Schema{Type: "string"}, nil
	case reflect.Bool:
		return &jsonschema.Schema{Type: "boolean"}, nil
	case reflect.Int, reflect.Int64, reflect.Int32:
		return &jsonschema.Schema{Type: "integer"}, nil
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		return &jsonschema.Schema{Type: "integer", Minimum: jsonschema.Number(0)}, nil
	case reflect.Float64, reflect.Float32:
		return &jsonschema.Schema{Type: "number"}, nil
	case reflect.Slice:
		var itemDef reflect.Value
		if t.Elem().Kind() == reflect.Struct {
			itemDef = reflect.Zero(t.Elem()) // an item's keys default to their zero values
		}
		items, err := g.of(t.Elem(), itemDef)
		if err != nil {
			return nil, err
		}
		return &jsonschema.Schema{Type: "array", Items: items}, nil
	case reflect.Map:
		values, err := g.of(t.Elem(), reflect.Value{})
		if err != nil {
			return nil, err
		}
		return &jsonschema.Schema{Type: "object", AdditionalProperties: values}, nil
	}
	return nil, fmt.Errorf("recipeschema: no schema for %s", t)
}

// object describes a struct: its keys in order, each with its comment, default, enum
// and whether it is required; no other keys.
func (g generator) object(t reflect.Type, def reflect.Value) (*jsonschema.Schema, error) {
	s := &jsonschema.Schema{Type: "object", AdditionalProperties: false}
	for _, f := range yamlnode.Fields(t) {
		var fdef reflect.Value
		if def.IsValid() {
			fdef = def.FieldByIndex(f.Index)
		}
		p, err := g.of(f.Type, fdef)
		if err != nil {
			return nil, err
		}
		if doc := g.comments[t.Name()+"."+f.Name]; doc != "" {
			p.Description = doc
		} else {
			return nil, fmt.Errorf("recipeschema: %s.%s (key %s) has no comment to describe it", t.Name(), f.Name, f.Key)
		}
		if enum := yamlnode.Enum(f.StructField); enum != nil {
			p.Enum = jsonschema.Strings(enum...)
		}
		if f.Type.Kind() == reflect.Struct && !f.Type.Implements(schemerType) && len(p.Required) > 0 {
			s.Required = append(s.Required, f.Key) // a section with a key that must be given
		}
		switch {
		case f.Tag.Get("default") != "":
			p.DefaultText = f.Tag.Get("default")
		case f.Tag.Get("required") == "true":
			s.Required = append(s.Required, f.Key)
		case f.Type.Implements(schemerType) || f.Type.Kind() == reflect.Struct:
			// a section, or a form that says its own default
		case fdef.IsValid():
			v, err := plain(fdef.Interface())
			if err != nil {
				return nil, err
			}
			p.Default = v
		}
		s.Set(f.Key, p)
	}
	return s, nil
}

// plain returns a value as YAML reads it back (numbers, strings, lists, maps), for JSON.
func plain(v any) (any, error) {
	raw, err := yaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := yaml.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	if out == nil && reflect.ValueOf(v).Kind() == reflect.Slice {
		out = []any{}
	}
	return out, nil
}

// Reference writes the README's recipe reference from the schema: a table of every key
// with its type, default and meaning, then the forms of the keys that take several.
func Reference(s *jsonschema.Schema) string {
	var b strings.Builder
	b.WriteString("Every key, with its default (generated from `finetune.Config`; the same schema is\n")
	fmt.Fprintf(&b, "[%s](%s), which editors use for completion):\n\n", SchemaFile, SchemaFile)
	b.WriteString("| key | value | default | meaning |\n|---|---|---|---|\n")
	var forms []form
	rows(&b, s, "", &forms)
	for _, f := range forms {
		fmt.Fprintf(&b, "\n`%s`, one of:\n\n", f.key)
		named := map[string]bool{} // names that have a mapping form of their own
		for _, alt := range f.s.OneOf {
			if n := alt.Properties["name"]; n != nil && n.Const != nil {
				named[fmt.Sprint(n.Const)] = true
			}
		}
		for _, alt := range f.s.OneOf {
			alternative(&b, alt, named)
		}
	}
	return b.String()
}

type form struct {
	key string
	s   *jsonschema.Schema
}

func rows(b *strings.Builder, s *jsonschema.Schema, prefix string, forms *[]form) {
	for _, key := range s.Order {
		p := s.Properties[key]
		path := yamlnode.Join(prefix, key)
		section := p.Type == "object" && len(p.Order) > 0
		if section {
			rows(b, p, path, forms)
			continue
		}
		if p.Type == "array" && p.Items != nil && p.Items.Type == "object" && len(p.Items.Order) > 0 {
			fmt.Fprintf(b, "| `%s` | a list | %s | %s |\n", path, defaultOf(p, slices.Contains(s.Required, key)), cell(p.Description))
			rows(b, p.Items, path+"[]", forms)
			continue
		}
		value := typeOf(p)
		if len(p.OneOf) > 0 {
			value = "see below"
			*forms = append(*forms, form{path, p})
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", path, value, defaultOf(p, slices.Contains(s.Required, key)), cell(p.Description))
	}
}

func defaultOf(p *jsonschema.Schema, required bool) string {
	switch {
	case required:
		return "required"
	case p.DefaultText != "":
		return p.DefaultText
	case p.Default == nil:
		return ""
	}
	return "`" + inline(p.Default) + "`"
}

func typeOf(p *jsonschema.Schema) string {
	if len(p.Enum) > 0 {
		var vals []string
		for _, v := range p.Enum {
			vals = append(vals, "`"+inline(v)+"`")
		}
		return strings.Join(vals, " \\| ")
	}
	switch p.Type {
	case "string":
		return "text"
	case "boolean":
		return "true or false"
	case "integer":
		return "whole number"
	case "number":
		return "number"
	case "array":
		if p.Items != nil {
			return "list of " + plural(typeOf(p.Items))
		}
		return "list"
	}
	return p.Type
}

func plural(s string) string {
	switch s {
	case "text":
		return "strings"
	case "true or false":
		return "true or false values"
	}
	return s + "s"
}

// alternative writes one form of a key with several as a list item: the form, what it
// does, and its keys (or its items' keys) as items below it. The values of a list of
// names get their descriptions unless a mapping form of the same name says it.
func alternative(b *strings.Builder, s *jsonschema.Schema, named map[string]bool) {
	var head string
	keys := s
	switch {
	case s.Const != nil:
		head = "`" + inline(s.Const) + "`"
	case len(s.Enum) > 0:
		var parts []string
		for i, v := range s.Enum {
			part := "`" + inline(v) + "`"
			if i < len(s.EnumDescriptions) && s.EnumDescriptions[i] != "" && !named[fmt.Sprint(v)] {
				part += " (" + s.EnumDescriptions[i] + ")"
			}
			parts = append(parts, part)
		}
		head = strings.Join(parts, ", ")
	case s.Type == "object" && len(s.Order) > 0:
		head = "`{" + strings.Join(keyList(s), ", ") + "}`"
	case s.Type == "object":
		head = "a mapping of names to " + plural(typeOf(schemaOr(s.AdditionalProperties)))
	case s.Type == "array" && s.Items != nil && len(s.Items.Order) > 0:
		head = "a list of `{" + strings.Join(keyList(s.Items), ", ") + "}`"
		keys = s.Items
	case s.Type == "boolean":
		head = "`true` or `false`"
	default:
		head = "a " + typeOf(s)
	}
	if desc := s.Description; desc != "" {
		if n := s.Properties["name"]; n != nil && n.Const != nil {
			desc = strings.TrimPrefix(desc, fmt.Sprint(n.Const)+": ")
		}
		head += ": " + desc
	}
	fmt.Fprintf(b, "- %s\n", head)
	for _, k := range keys.Order {
		p := keys.Properties[k]
		if p.Const != nil || p.Description == "" {
			continue
		}
		item := "`" + k + "`"
		switch {
		case slices.Contains(keys.Required, k):
			item += " (required)"
		case p.Default != nil:
			item += " (default " + inline(p.Default) + ")"
		}
		fmt.Fprintf(b, "  - %s: %s\n", item, p.Description)
	}
}

func keyList(s *jsonschema.Schema) []string {
	var keys []string
	for _, k := range s.Order {
		if p := s.Properties[k]; p.Const != nil {
			keys = append(keys, k+": "+inline(p.Const))
			continue
		}
		keys = append(keys, k)
	}
	return keys
}

func schemaOr(v any) *jsonschema.Schema {
	if s, ok := v.(*jsonschema.Schema); ok {
		return s
	}
	return &jsonschema.Schema{}
}

// inline writes a value as a recipe would, on one line (a name as it is: off, not "off").
func inline(v any) string {
	if str, ok := v.(string); ok && str != "" {
		return str
	}
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	setFlow(&n)
	out, err := yaml.Marshal(&n)
	if err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(string(out))
}

func setFlow(n *yaml.Node) {
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		n.Style = yaml.FlowStyle
	}
	for _, c := range n.Content {
		setFlow(c)
	}
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// Splice replaces the generated section of readme (between Begin and End) with body.
func Splice(readme []byte, body string) ([]byte, error) {
	start := bytes.Index(readme, []byte(Begin))
	end := bytes.Index(readme, []byte(End))
	if start < 0 || end < start {
		return nil, fmt.Errorf("README.md: no generated section (the lines %q and %q)", Begin, End)
	}
	var out bytes.Buffer
	out.Write(readme[:start+len(Begin)])
	out.WriteString("\n")
	out.WriteString(body)
	out.Write(readme[end:])
	return out.Bytes(), nil
}

// Generate returns the README with its reference section replaced and the JSON Schema
// file's contents, from the finetune package's sources in dir.
func Generate(dir string, readme []byte) (newReadme, schemaJSON []byte, err error) {
	comments, err := Comments(dir)
	if err != nil {
		return nil, nil, err
	}
	s, err := Schema(comments)
	if err != nil {
		return nil, nil, err
	}
	if schemaJSON, err = jsonschema.MarshalIndent(s); err != nil {
		return nil, nil, err
	}
	if newReadme, err = Splice(readme, Reference(s)); err != nil {
		return nil, nil, err
	}
	return newReadme, schemaJSON, nil
}

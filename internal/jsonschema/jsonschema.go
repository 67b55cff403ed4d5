// Package jsonschema is the subset of JSON Schema (draft 2020-12) that describes the
// recipe for editors: YAML completion, hover text and checks in VS Code's YAML extension
// and other users of yaml-language-server. Types that decode their own YAML form describe
// it as a *Schema (a JSONSchema method); the recipe's generator puts the pieces together.
package jsonschema

import (
	"bytes"
	"encoding/json"
)

// Schema is one JSON Schema. Properties are kept in Order (the order of the recipe's
// keys) for the generated reference; JSON objects have no order.
type Schema struct {
	Schema      string `json:"$schema,omitempty"`
	ID          string `json:"$id,omitempty"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	// Markdown is the description with Markdown (code spans), which VS Code shows on hover.
	Markdown string `json:"markdownDescription,omitempty"`

	Type  string `json:"type,omitempty"`
	Enum  []any  `json:"enum,omitempty"`
	Const any    `json:"const,omitempty"`
	// EnumDescriptions describe the values of Enum, one each (a VS Code extension).
	EnumDescriptions []string `json:"enumDescriptions,omitempty"`
	Default          any      `json:"default,omitempty"`
	Examples         []any    `json:"examples,omitempty"`

	Minimum          *float64 `json:"minimum,omitempty"`
	ExclusiveMinimum *float64 `json:"exclusiveMinimum,omitempty"`
	Maximum          *float64 `json:"maximum,omitempty"`
	ExclusiveMaximum *float64 `json:"exclusiveMaximum,omitempty"`

	Items    *Schema `json:"items,omitempty"`
	MinItems *int    `json:"minItems,omitempty"`
	MaxItems *int    `json:"maxItems,omitempty"`

	Properties map[string]*Schema `json:"properties,omitempty"`
	Order      []string           `json:"-"`
	Required   []string           `json:"required,omitempty"`
	// AdditionalProperties is false (no other keys) or the schema of the other keys.
	AdditionalProperties any     `json:"additionalProperties,omitempty"`
	PropertyNames        *Schema `json:"propertyNames,omitempty"`
	MinProperties        *int    `json:"minProperties,omitempty"`

	OneOf []*Schema `json:"oneOf,omitempty"`
	Not   *Schema   `json:"not,omitempty"`
}

// Set adds a property (after the others, for Order).
func (s *Schema) Set(key string, p *Schema) {
	if s.Properties == nil {
		s.Properties = map[string]*Schema{}
	}
	if _, ok := s.Properties[key]; !ok {
		s.Order = append(s.Order, key)
	}
	s.Properties[key] = p
}

// Number returns x's address, for the bounds.
func Number(x float64) *float64 { return &x }

// Count returns n's address, for the item and property counts.
func Count(n int) *int { return &n }

// Strings returns the values as an enum.
func Strings(values ...string) []any {
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = v
	}
	return out
}

// MarshalIndent writes the schema as indented JSON with a final newline, Markdown and
// comparison signs as written (no \u003c escapes).
func MarshalIndent(s *Schema) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

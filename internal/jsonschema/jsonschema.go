// Package jsonschema is the subset of JSON Schema (draft 2020-12) that describes the
// recipe for editors: YAML completion, hover text and checks in VS Code's YAML extension
// and other users of yaml-language-server. Types that decode their own YAML form describe
// it as a *Schema (a JSONSchema method); the recipe's generator puts the pieces together.
package jsonschema

import (
	"bytes"
	"encoding/json"
	"slices"
)

// Schema is one JSON Schema. Properties are kept in Order (the order of the recipe's
// keys) for the generated reference; JSON objects have no order.
type Schema struct {
	Schema      string `json:"$schema,omitempty"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`

	Type  string `json:"type,omitempty"`
	Enum  []any  `json:"enum,omitempty"`
	Const any    `json:"const,omitempty"`
	// EnumDescriptions describe the values of Enum, one each (a VS Code extension).
	EnumDescriptions []string `json:"enumDescriptions,omitempty"`
	Default          any      `json:"default,omitempty"`
	// DefaultText says what a key without a plain default gets, for the reference.
	DefaultText string `json:"-"`
	Examples    []any  `json:"examples,omitempty"`

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

// MarshalJSON writes the schema with its properties in Order.
func (s *Schema) MarshalJSON() ([]byte, error) {
	type plain Schema
	c := *s
	c.Properties = nil
	raw, err := encode((*plain)(&c))
	if err != nil || len(s.Properties) == 0 {
		return raw, err
	}
	var props bytes.Buffer
	props.WriteString(`{`)
	keys := append([]string(nil), s.Order...)
	for k := range s.Properties {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	for i, k := range keys {
		if i > 0 {
			props.WriteString(",")
		}
		name, err := encode(k)
		if err != nil {
			return nil, err
		}
		value, err := encode(s.Properties[k])
		if err != nil {
			return nil, err
		}
		props.Write(name)
		props.WriteString(":")
		props.Write(value)
	}
	props.WriteString("}")
	out := append(bytes.TrimSuffix(raw, []byte("}")), []byte(`,"properties":`)...)
	if bytes.Equal(raw, []byte("{}")) {
		out = []byte(`{"properties":`)
	}
	out = append(out, props.Bytes()...)
	return append(out, '}'), nil
}

func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSpace(b.Bytes()), nil
}

// MarshalIndent writes the schema as indented JSON with a final newline, comparison
// signs as written (no \u003c escapes).
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

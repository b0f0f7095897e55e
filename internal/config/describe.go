package config

import (
	"fmt"
	"reflect"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
)

// Describe renders c as YAML under its keys, every key present (empty ones too), with
// durations as written (10s) and no secret in it: the configuration holds only where
// secrets are. cmd/ucprelay fills the keys left to the components with their effective
// values first, so `config check` shows what will run.
func Describe(c *Config) ([]byte, error) {
	m, _ := describe(reflect.ValueOf(*c)).(map[string]any)
	out, err := yaml.Parser().Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("config: render: %w", err)
	}
	return out, nil
}

func describe(v reflect.Value) any {
	if d, ok := v.Interface().(time.Duration); ok {
		return d.String()
	}
	switch v.Kind() {
	case reflect.Struct:
		out := map[string]any{}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if tag := f.Tag.Get("koanf"); tag != "" && f.IsExported() {
				out[tag] = describe(v.Field(i))
			}
		}
		return out
	case reflect.Map:
		out := make(map[string]any, v.Len())
		for _, k := range v.MapKeys() {
			out[fmt.Sprint(k.Interface())] = describe(v.MapIndex(k))
		}
		return out
	case reflect.Slice:
		out := make([]any, v.Len())
		for i := range v.Len() {
			out[i] = describe(v.Index(i))
		}
		return out
	}
	return v.Interface()
}

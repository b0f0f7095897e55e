package config

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"

	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// Describe renders c as YAML under its keys, every key present (empty ones too), with
// durations as written (10s) and no secret in it: the configuration holds only where
// secrets are. cmd/ucprelay fills the keys left to the components with their effective
// values first, so `config check` shows what will run. A URL's password and secret-looking
// query values are redacted.
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
	if v.Kind() == reflect.String {
		return RedactURLs(v.String())
	}
	return v.Interface()
}

// RedactURLs hides what a URL value (one, or a comma list) may carry of a credential:
// the password of its userinfo and every query value whose name suggests a secret
// (webhook.SecretName). Other strings are returned as they are.
func RedactURLs(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.Host == "" {
			continue
		}
		changed := false
		switch _, ok := u.User.Password(); {
		case ok:
			u.User = url.UserPassword(u.User.Username(), redacted)
			changed = true
		case u.User != nil: // a user name alone is often a token
			u.User = url.User(redacted)
			changed = true
		}
		if q := u.Query(); len(q) > 0 {
			for name := range q {
				if webhook.SecretName(name) {
					q.Set(name, redacted)
					changed = true
				}
			}
			u.RawQuery = q.Encode()
		}
		if changed {
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

const redacted = "REDACTED"

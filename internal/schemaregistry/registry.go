// Package schemaregistry is an in-process schema registry speaking the subset of the
// Confluent Schema Registry REST API that franz-go's sr client uses to register and
// resolve schemas. A Confluent registry cannot run on the machines that build and test
// ucprelay (it is not on Maven Central), so tests and `ucprelay demo` use this one;
// production points at the user's registry.
package schemaregistry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

type schema struct {
	Schema     string `json:"schema"`
	SchemaType string `json:"schemaType,omitempty"`
}

type subjectVersion struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// Registry is an http.Handler holding schemas in memory. The same schema text under the
// same subject always gets the same id.
type Registry struct {
	mu       sync.Mutex
	byID     []schema                 // id-1 → schema
	ids      map[string]int           // schemaType + text → id
	subjects map[string][]int         // subject → ids by version-1
	usages   map[int][]subjectVersion // id → where it is registered
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{ids: map[string]int{}, subjects: map[string][]int{}, usages: map[int][]subjectVersion{}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, http.StatusNotFound, map[string]any{"error_code": code, "message": msg})
}

// ServeHTTP implements the API subset:
//
//	POST /subjects/{subject}/versions            register, answers {"id": N}
//	GET  /subjects/{subject}/versions            list versions
//	GET  /subjects/{subject}/versions/{v|latest} one version
//	GET  /schemas/ids/{id}                       schema by id
//	GET  /schemas/ids/{id}/versions              where an id is registered
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case len(parts) == 3 && parts[0] == "subjects" && parts[2] == "versions" && req.Method == http.MethodPost:
		var s schema
		if err := json.NewDecoder(req.Body).Decode(&s); err != nil || s.Schema == "" {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error_code": 42201, "message": "invalid schema"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"id": r.register(parts[1], s)})
	case len(parts) == 3 && parts[0] == "subjects" && parts[2] == "versions" && req.Method == http.MethodGet:
		ids, ok := r.subjects[parts[1]]
		if !ok {
			notFound(w, 40401, "Subject not found")
			return
		}
		vs := make([]int, len(ids))
		for i := range ids {
			vs[i] = i + 1
		}
		writeJSON(w, http.StatusOK, vs)
	case len(parts) == 4 && parts[0] == "subjects" && parts[2] == "versions" && req.Method == http.MethodGet:
		ids, ok := r.subjects[parts[1]]
		if !ok {
			notFound(w, 40401, "Subject not found")
			return
		}
		v := len(ids)
		if parts[3] != "latest" && parts[3] != "-1" {
			n, err := strconv.Atoi(parts[3])
			if err != nil || n < 1 || n > len(ids) {
				notFound(w, 40402, "Version not found")
				return
			}
			v = n
		}
		id := ids[v-1]
		s := r.byID[id-1]
		writeJSON(w, http.StatusOK, map[string]any{"subject": parts[1], "version": v, "id": id, "schema": s.Schema, "schemaType": s.SchemaType})
	case len(parts) >= 3 && parts[0] == "schemas" && parts[1] == "ids" && req.Method == http.MethodGet:
		id, err := strconv.Atoi(parts[2])
		if err != nil || id < 1 || id > len(r.byID) {
			notFound(w, 40403, "Schema not found")
			return
		}
		switch {
		case len(parts) == 3:
			writeJSON(w, http.StatusOK, r.byID[id-1])
		case len(parts) == 4 && parts[3] == "versions":
			writeJSON(w, http.StatusOK, r.usages[id])
		default:
			notFound(w, 404, "not found")
		}
	default:
		notFound(w, 404, "not found")
	}
}

func (r *Registry) register(subject string, s schema) int {
	if s.SchemaType == "" {
		s.SchemaType = "AVRO"
	}
	key := s.SchemaType + "\x00" + s.Schema
	id, ok := r.ids[key]
	if !ok {
		r.byID = append(r.byID, s)
		id = len(r.byID)
		r.ids[key] = id
	}
	for _, have := range r.subjects[subject] {
		if have == id {
			return id
		}
	}
	r.subjects[subject] = append(r.subjects[subject], id)
	r.usages[id] = append(r.usages[id], subjectVersion{Subject: subject, Version: len(r.subjects[subject])})
	return id
}

// Serve listens on addr ("127.0.0.1:0" for any free port) and serves the registry until
// ctx ends. It returns the registry's base URL once it accepts connections.
func Serve(ctx context.Context, addr string, r *Registry) (string, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("schemaregistry: listen: %w", err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = ln.Close()
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return "http://" + ln.Addr().String(), nil
}

// Package helm holds the tests of the Helm chart in helm/ucprelay: they render it with
// helm (pinned in tools/go.mod) under several values and check the manifests, and that
// the configuration the chart ships loads.
package helm

package config

// The reference of glimpse.yaml (docs/glimpse-yaml.md's key table and
// docs/glimpse.schema.json) is generated from the types this package
// decodes; config/internal/refgen's test fails when it is out of date.
//go:generate go run ./internal/refgen

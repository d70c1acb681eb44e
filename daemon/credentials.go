package daemon

import (
	"os"

	"github.com/glimpse-dev/glimpse/registry/ociregistry"
)

// ClientEnv is a preview.OpenOptions.Getenv for client providers that talk
// to this stack over HTTP (ociregistry and the builders pushing to its
// registry, the openfaas client of its gateway, the edge's route client):
// it answers the variables they read credentials from with the stack's
// (user User, password Password) and every other key from the process's
// environment. Every write to the stack's registry and every call of its
// gateway and route APIs needs these credentials, from loopback clients
// too.
func (s *Stack) ClientEnv(key string) string {
	switch key {
	case ociregistry.EnvUsername, "OPENFAAS_USERNAME", "GLIMPSE_USERNAME":
		return User
	case ociregistry.EnvPassword, "OPENFAAS_PASSWORD", "GLIMPSE_PASSWORD":
		return s.Password
	}
	return os.Getenv(key)
}

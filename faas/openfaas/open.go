package openfaas

import (
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	"k8s.io/client-go/kubernetes"

	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/preview"
)

func init() {
	preview.Runtimes.Register("openfaas", open)
}

// open opens "openfaas://host:port?namespace=ns&tls=true&timeout=2m&scaleDeployments=true".
// Credentials come from ResolveCredentials; OPENFAAS_CA_FILE names extra
// certificate authorities for tls=true. scaleDeployments=true sets
// Options.ScaleDeployments (scale to zero on OpenFaaS CE in a cluster,
// kubescale.go) with the cluster credentials internal/kubeapi finds
// (KUBECONFIG, else the in-cluster service account, else ~/.kube/config).
func open(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.FunctionRuntime, error) {
	q, err := preview.QueryParams(u, "namespace", "tls", "timeout", "scaleDeployments")
	if err != nil {
		return nil, err
	}
	if u.Host == "" {
		return nil, preview.Errorf(preview.InvalidArgument, "openfaas URL needs host:port, such as openfaas://127.0.0.1:8080")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, preview.Errorf(preview.InvalidArgument, "openfaas URL takes no path, got %q", u.Path)
	}
	scheme := "http"
	if v := q.Get("tls"); v != "" {
		useTLS, err := strconv.ParseBool(v)
		if err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "tls=%q is not a boolean", v)
		}
		if useTLS {
			scheme = "https"
		}
	}
	var timeout time.Duration
	if v := q.Get("timeout"); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil || timeout <= 0 {
			return nil, preview.Errorf(preview.InvalidArgument, "timeout=%q is not a positive duration such as 2m", v)
		}
	}
	if ns := q.Get("namespace"); ns != "" {
		if err := preview.ValidateDNSLabel(ns); err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "namespace=%q: %v", ns, err)
		}
	}
	gateway := scheme + "://" + u.Host
	user, password, err := ResolveCredentials(o.Env, gateway)
	if err != nil {
		return nil, err
	}
	opts := &Options{
		Namespace: q.Get("namespace"),
		Username:  user,
		Password:  password,
		Timeout:   timeout,
	}
	if scheme == "https" {
		opts.CAFile = o.Env("OPENFAAS_CA_FILE")
	}
	if v := q.Get("scaleDeployments"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "scaleDeployments=%q is not a boolean", v)
		}
		if on {
			cfg, err := kubeapi.Config(o)
			if err != nil {
				return nil, err
			}
			if opts.ScaleDeployments, err = kubernetes.NewForConfig(cfg); err != nil {
				return nil, preview.Errorf(preview.InvalidArgument, "kubernetes client: %v", err)
			}
		}
	}
	return New(gateway, opts)
}

// ResolveCredentials returns the basic-auth user and password for the
// gateway at gatewayURL ("http://127.0.0.1:8080"), reading settings
// through getenv, as faas-cli finds them. The password is the first of:
//
//   - OPENFAAS_PASSWORD;
//   - the content of the file named by OPENFAAS_PASSWORD_FILE (trimmed;
//     the basic-auth-password file of an OpenFaaS install's secret);
//   - the "basic" entry for gatewayURL in faas-cli's config.yml, written
//     by `faas-cli login`: in $OPENFAAS_CONFIG, else ./.openfaas when CI
//     is "true" or "1", else $HOME/.openfaas.
//
// The user is OPENFAAS_USERNAME, else the file OPENFAAS_USERNAME_FILE,
// else the config entry's user, else "admin". No password found is not an
// error (the gateway may not require one): password is then empty. A named
// file that cannot be read, an empty password file, or a damaged faas-cli
// config is InvalidArgument. It reads files only; safe for concurrent use.
func ResolveCredentials(getenv func(string) string, gatewayURL string) (user, password string, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	user = getenv("OPENFAAS_USERNAME")
	if user == "" {
		if f := getenv("OPENFAAS_USERNAME_FILE"); f != "" {
			if user, err = readSecretFile("OPENFAAS_USERNAME_FILE", f); err != nil {
				return "", "", err
			}
		}
	}
	password = getenv("OPENFAAS_PASSWORD")
	if password == "" {
		if f := getenv("OPENFAAS_PASSWORD_FILE"); f != "" {
			if password, err = readSecretFile("OPENFAAS_PASSWORD_FILE", f); err != nil {
				return "", "", err
			}
		}
	}
	if password == "" {
		cu, cp, err := faasCLILogin(getenv, gatewayURL)
		if err != nil {
			return "", "", err
		}
		password = cp
		if user == "" {
			user = cu
		}
	}
	if user == "" {
		user = "admin"
	}
	return user, password, nil
}

func readSecretFile(env, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", preview.Errorf(preview.InvalidArgument, "%s: %v", env, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", preview.Errorf(preview.InvalidArgument, "%s: %s is empty", env, path)
	}
	return s, nil
}

// faasCLIConfig is the part of faas-cli's config.yml that holds logins
// (github.com/openfaas/faas-cli config/config_file.go: auths[].gateway,
// auth "basic" and token base64("user:password")).
type faasCLIConfig struct {
	Auths []struct {
		Gateway string `yaml:"gateway"`
		Auth    string `yaml:"auth"`
		Token   string `yaml:"token"`
	} `yaml:"auths"`
}

// faasCLILogin returns the user and password `faas-cli login` saved for
// gatewayURL, or empty strings when there is none.
func faasCLILogin(getenv func(string) string, gatewayURL string) (string, string, error) {
	dir := getenv("OPENFAAS_CONFIG")
	if dir == "" {
		if ci := getenv("CI"); ci == "true" || ci == "1" {
			dir = ".openfaas"
		} else if home := getenv("HOME"); home != "" {
			dir = filepath.Join(home, ".openfaas")
		} else {
			return "", "", nil
		}
	}
	p := filepath.Join(dir, "config.yml")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", preview.Errorf(preview.InvalidArgument, "faas-cli config %s: %v", p, err)
	}
	var cfg faasCLIConfig
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return "", "", preview.Errorf(preview.InvalidArgument, "faas-cli config %s: %s", p, strings.Join(strings.Fields(err.Error()), " "))
	}
	want := strings.ToLower(strings.TrimRight(gatewayURL, "/"))
	for _, a := range cfg.Auths {
		if strings.ToLower(strings.TrimRight(a.Gateway, "/")) != want || a.Auth != "basic" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(a.Token)
		u, pw, ok := strings.Cut(string(raw), ":")
		if err != nil || !ok {
			return "", "", preview.Errorf(preview.InvalidArgument, "faas-cli config %s: the token for %s is not base64 of user:password; run faas-cli login again", p, a.Gateway)
		}
		return u, pw, nil
	}
	return "", "", nil
}

package main

import (
	"github.com/spf13/pflag"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/preview"
)

// serveFlags are the flags of `glimpse serve` that mirror the serve config
// file's keys (config.ServeKeys): each records what the command line gave,
// applied by resolve after the file and the environment.
type serveFlags struct {
	given []serveFlagValue
}

type serveFlagValue struct {
	key   config.ServeKey
	value string
}

// flagValue is a pflag.Value that checks its key's syntax at parse time
// and records the text for resolve.
type flagValue struct {
	f   *serveFlags
	key config.ServeKey
	cur string
}

func (v *flagValue) String() string { return v.cur }
func (v *flagValue) Type() string {
	if v.key.Kind == "url" {
		return "url"
	}
	return v.key.Kind
}
func (v *flagValue) Set(s string) error {
	var probe config.Serve
	if err := probe.Set(v.key.Key, s); err != nil {
		return err
	}
	v.cur = s
	v.f.given = append(v.f.given, serveFlagValue{v.key, s})
	return nil
}

func (f *serveFlags) register(fs *pflag.FlagSet) {
	for _, k := range config.ServeKeys {
		fl := fs.VarPF(&flagValue{f: f, key: k}, k.Flag, "", k.Usage+" [$"+k.Env+"]")
		if k.Kind == "bool" {
			fl.NoOptDefVal = "true"
		}
	}
}

// resolve builds the serve configuration: defaults, then the file (file,
// or $GLIMPSE_SERVE_CONFIG when file is empty), then each key's
// environment variable, then the flags given. Errors name the key and
// where it was set.
func (f *serveFlags) resolve(file string, getenv func(string) string) (config.Serve, error) {
	cfg := config.Serve{Listen: "127.0.0.1:8080"}
	if file == "" {
		file = getenv("GLIMPSE_SERVE_CONFIG")
	}
	if file != "" {
		if err := config.LoadServe(file, &cfg); err != nil {
			return cfg, err
		}
	}
	for _, k := range config.ServeKeys {
		if v := getenv(k.Env); v != "" {
			if err := cfg.Set(k.Key, v); err != nil {
				return cfg, preview.Errorf(preview.InvalidArgument, "$%s: %v", k.Env, err)
			}
		}
	}
	for _, g := range f.given {
		if err := cfg.Set(g.key.Key, g.value); err != nil {
			return cfg, preview.Errorf(preview.InvalidArgument, "--%s: %v", g.key.Flag, err)
		}
	}
	return cfg, nil
}

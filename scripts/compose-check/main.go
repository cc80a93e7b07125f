// compose-check validates Compose files the way `docker compose config` does, for machines
// that have a Docker client without its Compose plugin: it loads each file with compose-go,
// the library `docker compose` itself loads them with (Compose specification schema,
// interpolation, references between services), and then checks what `config` leaves to
// `up`: that bind-mounted host paths and build contexts and Dockerfiles exist.
//
//	go run . FILE...
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check FILE... (each a docker-compose.yml to validate)")
		os.Exit(2)
	}
	failed := false
	for _, file := range os.Args[1:] {
		if problems := check(file); len(problems) > 0 {
			failed = true
			for _, p := range problems {
				fmt.Fprintf(os.Stderr, "%s: %s\n", file, p)
			}
		} else {
			fmt.Printf("%s: valid\n", file)
		}
	}
	if failed {
		os.Exit(1)
	}
}

func check(file string) []string {
	options, err := cli.NewProjectOptions([]string{file}, cli.WithWorkingDirectory(filepath.Dir(file)))
	if err != nil {
		return []string{err.Error()}
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	for _, name := range project.ServiceNames() {
		service := project.Services[name]
		for _, volume := range service.Volumes {
			if volume.Type == types.VolumeTypeBind && !exists(volume.Source) {
				problems = append(problems, fmt.Sprintf("service %s mounts %s, which does not exist", name, volume.Source))
			}
		}
		if build := service.Build; build != nil {
			if !exists(build.Context) {
				problems = append(problems, fmt.Sprintf("service %s builds in %s, which does not exist", name, build.Context))
			} else if dockerfile := filepath.Join(build.Context, build.Dockerfile); build.Dockerfile != "" && !exists(dockerfile) {
				problems = append(problems, fmt.Sprintf("service %s builds from %s, which does not exist", name, dockerfile))
			}
		}
	}
	return problems
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

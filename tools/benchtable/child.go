package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// child is this binary re-executed with a subcommand (serve, growth): it
// answers JSON lines on its standard output and stops when its standard
// input is closed, so it never outlives the suite.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *json.Decoder
	desc  string
}

func startChild(ctx context.Context, log io.Writer, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = log
	cmd.WaitDelay = 10 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &child{cmd: cmd, stdin: stdin, out: json.NewDecoder(bufio.NewReader(stdout)), desc: fmt.Sprint(args)}, nil
}

// read decodes the child's next JSON line into v.
func (c *child) read(v any) error {
	if err := c.out.Decode(v); err != nil {
		_ = c.stop(nil)
		return fmt.Errorf("child %s: %w", c.desc, err)
	}
	return nil
}

// stop closes the child's input, reads its last line into last (if not
// nil) and waits for it to exit.
func (c *child) stop(last any) error {
	_ = c.stdin.Close()
	var derr error
	if last != nil {
		derr = c.out.Decode(last)
	}
	werr := c.cmd.Wait()
	if werr != nil {
		return fmt.Errorf("child %s: %w", c.desc, werr)
	}
	if derr != nil {
		return fmt.Errorf("child %s: %w", c.desc, derr)
	}
	return nil
}

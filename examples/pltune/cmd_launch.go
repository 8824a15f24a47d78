package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func init() {
	register(&command{
		name:    "launch",
		summary: "start a data-parallel job: N processes with torchrun's environment",
		run:     runLaunch,
	})
}

const launchUsage = `launch [flags] -- COMMAND [ARG...]

Starts --nproc-per-node copies of COMMAND on this machine with the environment
torchrun gives its workers (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE,
LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK), so a pltune program joins one
data-parallel group (train/dist) without Python. For several machines run it on
each with the same --nnodes, --master-addr and --master-port and that machine's
--node-rank; node 0's rank 0 hosts the rendezvous store on --master-port.

Each output line is prefixed with its rank. OMP_NUM_THREADS, unless set, is the
number of cores divided by --nproc-per-node. Signals (interrupt, terminate,
hang-up) are forwarded to every process. When one process exits non-zero the
others are terminated (killed after --grace) and launch exits with status 1.`

// launchSpec is a parsed launch command line.
type launchSpec struct {
	nproc, nnodes, nodeRank int
	addr                    string
	port                    int
	grace                   time.Duration
	prefix                  bool
	argv                    []string
}

func parseLaunch(env *cliEnv, args []string) (*launchSpec, error) {
	fs := newFlags(env, "launch", launchUsage)
	s := &launchSpec{}
	fs.IntVar(&s.nproc, "nproc-per-node", 1, "processes on this machine (one per GPU on a CUDA machine)")
	fs.IntVar(&s.nnodes, "nnodes", 1, "machines in the job")
	fs.IntVar(&s.nodeRank, "node-rank", 0, "this machine's index, 0 to nnodes-1")
	fs.StringVar(&s.addr, "master-addr", "127.0.0.1", "address of node 0, where rank 0 hosts the rendezvous store")
	fs.IntVar(&s.port, "master-port", 0, "port of the rendezvous store (default: a free port for one machine, 29500 for several)")
	fs.DurationVar(&s.grace, "grace", 30*time.Second, "how long stopping processes get before they are killed")
	fs.BoolVar(&s.prefix, "prefix", true, "prefix each output line with [rankN]")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	s.argv = fs.Args()
	switch {
	case len(s.argv) == 0:
		return nil, usagef("no COMMAND to launch; usage: pltune launch --nproc-per-node N -- COMMAND [ARG...]")
	case s.nproc < 1:
		return nil, usagef("--nproc-per-node %d: want at least 1", s.nproc)
	case s.nnodes < 1:
		return nil, usagef("--nnodes %d: want at least 1", s.nnodes)
	case s.nodeRank < 0 || s.nodeRank >= s.nnodes:
		return nil, usagef("--node-rank %d: want 0 to %d (--nnodes %d)", s.nodeRank, s.nnodes-1, s.nnodes)
	case s.port < 0 || s.port > 65535:
		return nil, usagef("--master-port %d: want 1 to 65535", s.port)
	case s.addr == "":
		return nil, usagef("--master-addr is empty")
	case s.grace < 0:
		return nil, usagef("--grace %v: want a duration of zero or more", s.grace)
	}
	return s, nil
}

// worker is one launched process.
type worker struct {
	rank int
	cmd  *exec.Cmd
	err  error // from Wait
}

func runLaunch(ctx context.Context, env *cliEnv, args []string) error {
	s, err := parseLaunch(env, args)
	if err != nil {
		return err
	}
	if s.port == 0 {
		if s.nnodes > 1 {
			s.port = 29500
		} else if s.port, err = freeLoopbackPort(); err != nil {
			return err
		}
	}
	world := s.nproc * s.nnodes
	threads := ""
	if os.Getenv("OMP_NUM_THREADS") == "" {
		// Without it every process would start one libtorch thread per core.
		threads = strconv.Itoa(max(1, runtime.NumCPU()/s.nproc))
	}
	var outMu sync.Mutex
	var pipes sync.WaitGroup
	workers := make([]*worker, 0, s.nproc)
	var readers []*os.File
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	exited := make(chan *worker, s.nproc)
	for local := range s.nproc {
		rank := s.nodeRank*s.nproc + local
		cmd := exec.Command(s.argv[0], s.argv[1:]...)
		cmd.Env = append(os.Environ(),
			"MASTER_ADDR="+s.addr, "MASTER_PORT="+strconv.Itoa(s.port),
			"WORLD_SIZE="+strconv.Itoa(world), "RANK="+strconv.Itoa(rank),
			"LOCAL_RANK="+strconv.Itoa(local), "LOCAL_WORLD_SIZE="+strconv.Itoa(s.nproc),
			"GROUP_RANK="+strconv.Itoa(s.nodeRank), "ROLE_RANK="+strconv.Itoa(rank),
			"ROLE_WORLD_SIZE="+strconv.Itoa(world), "TORCHELASTIC_RESTART_COUNT=0")
		if threads != "" {
			cmd.Env = append(cmd.Env, "OMP_NUM_THREADS="+threads)
		}
		// Its own process group: a terminal's Ctrl-C reaches the launcher
		// only, which forwards it once, and stopping a rank stops whatever
		// it started.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		pfx := ""
		if s.prefix {
			pfx = fmt.Sprintf("[rank%d]: ", rank)
		}
		// Pipes of our own rather than exec's: Wait must not depend on the
		// output being drained, which a rank's children can hold open.
		outR, outW, err := os.Pipe()
		if err != nil {
			signalAll(workers, syscall.SIGKILL)
			return err
		}
		readers = append(readers, outR)
		errR, errW, err := os.Pipe()
		if err != nil {
			outW.Close()
			signalAll(workers, syscall.SIGKILL)
			return err
		}
		readers = append(readers, errR)
		cmd.Stdout, cmd.Stderr = outW, errW
		err = cmd.Start()
		outW.Close()
		errW.Close()
		if err != nil {
			signalAll(workers, syscall.SIGKILL)
			return fmt.Errorf("starting rank %d (%s): %w", rank, s.argv[0], err)
		}
		w := &worker{rank: rank, cmd: cmd}
		workers = append(workers, w)
		pipes.Add(2)
		go copyLines(&pipes, &outMu, env.stdout, outR, pfx)
		go copyLines(&pipes, &outMu, env.stderr, errR, pfx)
		go func() {
			w.err = cmd.Wait()
			exited <- w
		}()
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	var failed *worker
	var stopping bool
	var killTimer <-chan time.Time
	stop := func(sig syscall.Signal) {
		signalAll(workers, sig)
		if !stopping {
			stopping = true
			killTimer = time.After(s.grace)
		}
	}
	ctxDone := ctx.Done()
	// main's context ends on the same SIGINT/SIGTERM that sigs receives;
	// forwarding both would give the ranks two signals, which many
	// programs take as "quit now". So a cancelled context stops the ranks
	// only when no signal was forwarded meanwhile.
	var ctxStop <-chan time.Time
	for running := len(workers); running > 0; {
		select {
		case w := <-exited:
			running--
			if w.err != nil && failed == nil && !stopping {
				failed = w
				fmt.Fprintf(env.stderr, "pltune launch: rank %d %s; stopping the other ranks\n", w.rank, describeExit(w.err))
				stop(syscall.SIGTERM)
			}
		case sig := <-sigs:
			stop(sig.(syscall.Signal))
		case <-ctxDone:
			ctxDone = nil
			ctxStop = time.After(200 * time.Millisecond)
		case <-ctxStop:
			ctxStop = nil
			if !stopping {
				stop(syscall.SIGTERM)
			}
		case <-killTimer:
			fmt.Fprintf(env.stderr, "pltune launch: ranks still running %v after being stopped; killing them\n", s.grace)
			signalAll(workers, syscall.SIGKILL)
			killTimer = nil
		}
	}
	drained := make(chan struct{})
	go func() { pipes.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		// Something a rank started still holds its output open.
	}
	if failed != nil {
		return &exitError{code: 1, msg: fmt.Sprintf("rank %d %s", failed.rank, describeExit(failed.err))}
	}
	for _, w := range workers {
		if w.err != nil {
			return &exitError{code: 1, msg: fmt.Sprintf("rank %d %s", w.rank, describeExit(w.err))}
		}
	}
	if ctx.Err() != nil {
		return &exitError{code: 1, msg: "stopped: " + ctx.Err().Error()}
	}
	return nil
}

// signalAll sends sig to every worker's process group: the rank and
// whatever it started, which may outlive it.
func signalAll(workers []*worker, sig syscall.Signal) {
	for _, w := range workers {
		syscall.Kill(-w.cmd.Process.Pid, sig)
	}
}

func describeExit(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return "was killed by " + st.Signal().String()
		}
		return "exited with status " + strconv.Itoa(ee.ExitCode())
	}
	return err.Error()
}

// copyLines copies r to w line by line, each line prefixed, under mu so
// lines of different ranks do not interleave.
func copyLines(wg *sync.WaitGroup, mu *sync.Mutex, w io.Writer, r io.Reader, prefix string) {
	defer wg.Done()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if line[len(line)-1] != '\n' {
				line += "\n"
			}
			mu.Lock()
			io.WriteString(w, prefix+line)
			mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port for the rendezvous: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

package app

import (
	"errors"
	"log/slog"
	"os"
	"strconv"
	"syscall"
)

// setNice gives every thread of the process the nice value nice (0:
// leave it). Linux keeps a nice value per thread and a new thread takes
// its maker's, so once those there are have it, the Go runtime's later
// threads have it too; a second pass catches threads made during the
// first. Without the privilege to raise the priority it warns and changes
// nothing more (config.RaftConfig.Nice).
func setNice(nice int, log *slog.Logger) {
	if nice == 0 {
		return
	}
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			log.Warn("set the scheduling priority", "nice", nice, "err", err)
			return
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			err = syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice)
			switch {
			case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
				log.Warn("cannot raise the scheduling priority (needs root or CAP_SYS_NICE): on a busy host Raft's heartbeats may be late and leadership move",
					"nice", nice, "err", err)
				return
			case err != nil && !errors.Is(err, syscall.ESRCH): // ESRCH: the thread ended
				log.Warn("set the scheduling priority", "nice", nice, "tid", tid, "err", err)
				return
			}
		}
	}
	log.Info("scheduling priority set", "nice", nice)
}

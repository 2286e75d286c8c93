#!/usr/bin/env bash
# Reports how well this Linux host is tuned for the statarb hot thread and, for each
# finding, prints the command that fixes it.
#
# Usage: tools/check_host.sh [--apply] [CORES]
#   CORES   the cores the hot and gateway threads are pinned to, as a kernel cpu list
#           (e.g. 2-3 or 2,3; default: the last core)
#   --apply apply the runtime fixes (sysfs/sysctl: governor, turbo, THP, busy_poll,
#           clock source, IRQ affinity; needs root) and print the boot parameters to add
#           (isolcpus, nohz_full, rcu_nocbs, C-states), which need a reboot.
# Runtime fixes do not survive a reboot: put them in a sysctl.d file / a oneshot unit.
set -u
apply=0
if [ "${1:-}" = "--apply" ]; then apply=1; shift; fi
ncpu=$(nproc --all)
cores=${1:-$((ncpu - 1))}
first=${cores%%[,-]*}
boot_add=()
ok()   { printf '  ok    %s\n' "$*"; }
warn() { printf '  WARN  %s\n' "$*"; }
info() { printf '  info  %s\n' "$*"; }
fix()  { printf '        fix: %s\n' "$*"; }
# A runtime fix: printed, and run when --apply is given.
runtime_fix() {
  fix "$1"
  if [ "$apply" = 1 ]; then
    if bash -c "$1"; then printf '        applied\n'; else printf '        FAILED (root?)\n'; fi
  fi
}
boot_fix() { fix "add '$1' to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot)"; boot_add+=("$1"); }

# Housekeeping cores: every online core outside CORES (for IRQ affinity).
expand() { local IFS=, out=() a b p; for p in $1; do if [[ $p == *-* ]]; then a=${p%-*}; b=${p#*-}; for ((i = a; i <= b; i++)); do out+=("$i"); done; else out+=("$p"); fi; done; printf '%s ' "${out[@]}"; }
hot=" $(expand "$cores") "
house=()
for ((c = 0; c < ncpu; c++)); do [[ $hot == *" $c "* ]] || house+=("$c"); done
house_list=$(IFS=,; echo "${house[*]}")

echo "host: $(uname -srm), $ncpu cpus, hot cores $cores, housekeeping ${house_list:-none}"
cmdline=$(cat /proc/cmdline 2>/dev/null || true)

# Isolation: keep the scheduler, timer ticks and RCU callbacks off the hot cores.
for param in isolcpus nohz_full rcu_nocbs; do
  v=$(grep -o "$param=[^ ]*" <<<"$cmdline" || true)
  if [ -n "$v" ]; then ok "$v"; else warn "$param not set"; boot_fix "$param=$cores"; fi
done

# Frequency: the performance governor on the hot cores.
for c in $(expand "$cores"); do
  gov=/sys/devices/system/cpu/cpu$c/cpufreq/scaling_governor
  if [ -r "$gov" ]; then
    g=$(cat "$gov")
    if [ "$g" = performance ]; then ok "cpu$c governor: performance"; else warn "cpu$c governor: $g"; runtime_fix "echo performance > $gov"; fi
  else
    info "cpu$c: no cpufreq control visible (VM or fixed frequency)"
  fi
done

# Turbo: off, so the hot core's frequency (and its latency) does not swing with load.
if [ -r /sys/devices/system/cpu/intel_pstate/no_turbo ]; then
  if [ "$(cat /sys/devices/system/cpu/intel_pstate/no_turbo)" = 1 ]; then ok "turbo off (intel_pstate)"; else warn "turbo on (intel_pstate)"; runtime_fix "echo 1 > /sys/devices/system/cpu/intel_pstate/no_turbo"; fi
elif [ -r /sys/devices/system/cpu/cpufreq/boost ]; then
  if [ "$(cat /sys/devices/system/cpu/cpufreq/boost)" = 0 ]; then ok "boost off"; else warn "boost on"; runtime_fix "echo 0 > /sys/devices/system/cpu/cpufreq/boost"; fi
else
  info "no turbo control visible"
fi

# C-states: deep idle states add tens of microseconds of wake-up latency.
maxc=$(grep -o 'intel_idle.max_cstate=[0-9]*\|processor.max_cstate=[0-9]*' <<<"$cmdline" || true)
if [ -n "$maxc" ] || grep -q 'idle=poll' <<<"$cmdline"; then
  ok "C-states limited: ${maxc:-idle=poll}"
else
  warn "deep C-states allowed"
  boot_fix "intel_idle.max_cstate=1 processor.max_cstate=1"
fi

# Transparent hugepages: khugepaged compaction can stall the hot thread.
thp=/sys/kernel/mm/transparent_hugepage/enabled
if [ -r "$thp" ]; then
  t=$(grep -o '\[[a-z]*\]' "$thp")
  if [ "$t" = "[never]" ] || [ "$t" = "[madvise]" ]; then ok "transparent hugepages $t"; else warn "transparent hugepages $t"; runtime_fix "echo madvise > $thp"; fi
fi

# IRQ affinity: device interrupts on the housekeeping cores only.
if pgrep -x irqbalance >/dev/null 2>&1; then
  warn "irqbalance is running: it may move NIC interrupts onto the hot cores"
  fix "systemctl disable --now irqbalance   (or IRQBALANCE_BANNED_CPULIST=$cores in /etc/default/irqbalance)"
  [ "$apply" = 1 ] && info "not stopped by --apply: stop it yourself"
else
  ok "irqbalance not running"
fi
if [ -n "$house_list" ] && [ -r /proc/irq/default_smp_affinity ]; then
  on_hot=0
  for f in /proc/irq/[0-9]*/smp_affinity_list; do
    [ -r "$f" ] || continue
    for c in $(expand "$(cat "$f")"); do [[ $hot == *" $c "* ]] && { on_hot=$((on_hot + 1)); break; }; done
  done
  if [ "$on_hot" = 0 ]; then ok "no IRQ may run on the hot cores"; else
    warn "$on_hot IRQs may run on the hot cores"
    runtime_fix "for f in /proc/irq/[0-9]*/smp_affinity_list; do echo $house_list > \$f 2>/dev/null; done; echo $house_list > /proc/irq/default_smp_affinity_list 2>/dev/null || true"
  fi
fi

# Busy polling on the feed sockets: the kernel spins on the NIC queue instead of
# sleeping until the interrupt (microseconds per packet).
for s in net.core.busy_poll net.core.busy_read; do
  v=$(sysctl -n "$s" 2>/dev/null || echo "?")
  if [ "$v" = "?" ]; then info "$s not available"
  elif [ "$v" -ge 50 ]; then ok "$s=$v"
  else warn "$s=$v (0 = off)"; runtime_fix "sysctl -w $s=50"; fi
done

# SMT: the hot core's sibling shares its caches and pipeline.
smt=/sys/devices/system/cpu/smt/active
if [ -r "$smt" ] && [ "$(cat "$smt")" = 1 ]; then
  sib=$(cat "/sys/devices/system/cpu/cpu$first/topology/thread_siblings_list" 2>/dev/null || echo "?")
  warn "SMT is on: cpu$first shares its physical core with cpus $sib"
  fix "keep the siblings idle, or: echo off > /sys/devices/system/cpu/smt/control (runtime) / nosmt (boot)"
else
  ok "SMT off or not reported"
fi

swappiness=$(cat /proc/sys/vm/swappiness 2>/dev/null || echo "?")
if [ "$swappiness" != "?" ] && [ "$swappiness" -le 10 ]; then ok "vm.swappiness=$swappiness"; else warn "vm.swappiness=$swappiness"; runtime_fix "sysctl -w vm.swappiness=10"; fi

# Clock source: tsc keeps Instant::now in the vDSO (tens of ns, no syscall).
cs=/sys/devices/system/clocksource/clocksource0
clk=$(cat "$cs/current_clocksource" 2>/dev/null || echo "?")
if [ "$clk" = tsc ]; then ok "clocksource tsc"
elif grep -qw tsc "$cs/available_clocksource" 2>/dev/null; then warn "clocksource $clk (tsc available)"; runtime_fix "echo tsc > $cs/current_clocksource"
else warn "clocksource $clk, tsc not offered (unstable TSC or VM)"; boot_fix "tsc=reliable"; fi

if [ ${#boot_add[@]} -gt 0 ]; then
  echo
  echo "boot parameters to add (reboot needed):"
  echo "  ${boot_add[*]}"
fi

#!/usr/bin/env bash
# Reports how well this Linux host is tuned for the statarb hot thread. Read-only:
# prints findings and suggestions, changes nothing. Usage: tools/check_host.sh [CORE]
# where CORE is the core the hot thread will be pinned to (default: the last one).
set -u
ncpu=$(nproc --all)
core=${1:-$((ncpu - 1))}
ok()   { printf '  ok    %s\n' "$*"; }
warn() { printf '  WARN  %s\n' "$*"; }
info() { printf '  info  %s\n' "$*"; }

echo "host: $(uname -srm), $ncpu cpus, hot core $core"
cmdline=$(cat /proc/cmdline 2>/dev/null || true)

for param in isolcpus nohz_full rcu_nocbs; do
  v=$(grep -o "$param=[^ ]*" <<<"$cmdline" || true)
  if [ -n "$v" ]; then ok "$v"; else warn "$param not set: add $param=$core to the kernel command line to keep the scheduler and timer ticks off the hot core"; fi
done

gov=/sys/devices/system/cpu/cpu$core/cpufreq/scaling_governor
if [ -r "$gov" ]; then
  g=$(cat "$gov")
  if [ "$g" = performance ]; then ok "cpu$core governor: performance"; else warn "cpu$core governor: $g (use performance: cpupower frequency-set -g performance)"; fi
else
  info "no cpufreq control visible (VM or fixed frequency)"
fi

thp=/sys/kernel/mm/transparent_hugepage/enabled
if [ -r "$thp" ]; then
  t=$(grep -o '\[[a-z]*\]' "$thp")
  if [ "$t" = "[never]" ] || [ "$t" = "[madvise]" ]; then ok "transparent hugepages $t"; else warn "transparent hugepages $t: khugepaged compaction can stall the hot thread (echo madvise > $thp)"; fi
fi

if pgrep -x irqbalance >/dev/null 2>&1; then
  warn "irqbalance is running: it may move NIC interrupts onto the hot core (set IRQBALANCE_BANNED_CPUS or stop it and pin IRQs)"
else
  ok "irqbalance not running"
fi

smt=/sys/devices/system/cpu/smt/active
if [ -r "$smt" ] && [ "$(cat "$smt")" = 1 ]; then
  sib=$(cat /sys/devices/system/cpu/cpu$core/topology/thread_siblings_list 2>/dev/null || echo "?")
  warn "SMT is on: the hot core shares its physical core with cpus $sib; keep the siblings idle or disable SMT"
else
  ok "SMT off or not reported"
fi

swappiness=$(cat /proc/sys/vm/swappiness 2>/dev/null || echo "?")
if [ "$swappiness" != "?" ] && [ "$swappiness" -le 10 ]; then ok "vm.swappiness=$swappiness"; else warn "vm.swappiness=$swappiness (use <= 10, and lock memory)"; fi

clk=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null || echo "?")
if [ "$clk" = tsc ]; then ok "clocksource tsc (Instant::now stays in the vDSO)"; else warn "clocksource $clk: Instant::now may be slow or a real syscall; prefer tsc"; fi

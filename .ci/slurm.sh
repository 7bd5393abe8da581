# Install (when missing) and start a single-node Slurm cluster (munged + slurmctld + slurmd, no
# systemd, no accounting database) for the executor tests, and export RECLOOP_TEST_SLURM=1.
# Sourced by .ci/run; idempotent: a cluster started by an earlier call is reused. Returns non-zero
# when the cluster does not come up, with the daemons' log tails.
start_slurm() {
  local dir=${RECLOOP_SLURM_DIR:-/var/lib/recloop-slurm}
  local conf=/etc/slurm/slurm.conf
  if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
     || ! command -v munged >/dev/null 2>&1 || ! command -v sbatch >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || return 1
    apt-get install -y -qq slurm-wlm munge >/dev/null || return 1
  fi
  # munge: the key comes with the package; the daemon runs as the munge user
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key || return 1
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged || { tail -5 /var/log/munge/munged.log >&2; return 1; }
    sleep 0.5
  fi
  # the configuration: this host is controller and only compute node, partition `debug`
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {print int($2/1024) - 512}' /proc/meminfo)
  mkdir -p "$dir/state" "$dir/spool" /etc/slurm
  if [ ! -f "$conf" ] || grep -q '^# written by recloop .ci/slurm.sh' "$conf"; then
    cat > "$conf.new" <<CONF
# written by recloop .ci/slurm.sh: a single-node cluster for tests
ClusterName=recloop
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MinJobAge=3600
ReturnToService=2
SlurmdTimeout=30
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    if ! cmp -s "$conf.new" "$conf"; then mv "$conf.new" "$conf"; else rm -f "$conf.new"; fi
  fi
  if ! scontrol ping 2>/dev/null | grep -q 'is UP'; then
    slurmctld -c 2>/dev/null || slurmctld || { tail -20 "$dir/slurmctld.log" >&2; return 1; }
  fi
  if ! pgrep -F "$dir/slurmd.pid" slurmd >/dev/null 2>&1; then
    slurmd || { tail -20 "$dir/slurmd.log" >&2; return 1; }
  fi
  # wait until the node takes jobs
  local i state
  for i in $(seq 1 60); do
    state=$(sinfo -h -N -n "$host" -o %T 2>/dev/null || true)
    case "$state" in
      idle*|mixed*|allocated*) break ;;
      down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
  done
  case "$state" in
    idle*|mixed*|allocated*) ;;
    *) echo "Slurm node $host is '$state', not idle" >&2
       tail -20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2; return 1 ;;
  esac
  RECLOOP_TEST_SLURM=1
  export RECLOOP_TEST_SLURM
  echo "Slurm up: partition debug on $host ($cpus CPUs)"
}

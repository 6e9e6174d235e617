# Run as the guest's init payload (scripts/linux_guest.sh --init): proves
# that user space runs, then the init powers the guest off.
echo "libbt linux smoke: user space reached"
uname -a
head -n 20 /proc/cpuinfo
cat /proc/interrupts

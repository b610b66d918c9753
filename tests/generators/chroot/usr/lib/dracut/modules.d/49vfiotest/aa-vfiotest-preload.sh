#!/bin/sh
# vfio-early generator tests only: sourced by dracut's shell init (cmdline 00,
# before 00-vfio-early.sh).
if [ "$(getarg test.preload=)" = vfio-pci ]; then
    modprobe vfio-pci
    echo "vfiotest: preloaded vfio-pci rc=$?" >/dev/kmsg
fi
# test.vfio=slow|fail-native|fail: loading vfio-pci made slow (3 s), failing after it loaded the
# native drivers, or failing at once.
case $(getarg test.vfio=) in
    slow) _l='sleep 3; modprobe --ignore-install vfio_pci' ;;
    fail-native) _l='modprobe bochs; modprobe snd_hda_intel; false' ;;
    fail) _l=false ;;
    *) _l= ;;
esac
if [ -n "$_l" ]; then
    mkdir -p /etc/modprobe.d
    echo "install vfio_pci $_l" >/etc/modprobe.d/vfiotest.conf
    echo "vfiotest: test.vfio=$(getarg test.vfio=): install vfio_pci $_l" >/dev/kmsg
fi
unset _l
:

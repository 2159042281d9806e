# Liteqube: no history, plain locale.
unset HISTFILE
export LANG=C.UTF-8
PS1='\u@\h:\w\$ '

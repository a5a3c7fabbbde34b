"""The stage 3 activity: Red Team vs Blue Team, judged by a CISO."""

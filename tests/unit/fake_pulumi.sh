#!/usr/bin/env bash
# A stand-in `pulumi` for test_pulumi_stack_script.py: records each call and its backend
# in $PULUMI_CALLS; FAKE_LOGGED_IN_RC and FAKE_STACK_EXISTS_RC steer `whoami` and `stack select`.
echo "$* | backend=${PULUMI_BACKEND_URL:-<unset>}" >> "$PULUMI_CALLS"
case "$1" in
  whoami) exit "${FAKE_LOGGED_IN_RC:-0}" ;;
  stack) [[ "$2" == select ]] && exit "${FAKE_STACK_EXISTS_RC:-1}" ;;
esac
exit 0

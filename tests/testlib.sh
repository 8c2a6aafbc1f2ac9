# What the shell tests share (sourced): counting checks. ok and bad count a
# check; note prints a remark; the test ends with "$passed ... $failed".
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
note() { echo "note: $*"; }

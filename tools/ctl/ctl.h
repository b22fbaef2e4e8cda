// tetherctl as a library: RunCtl() parses the command line, calls the mothership and prints,
// so tests can run it in-process; main.cc only forwards to it.
#pragma once

#include <ostream>

namespace tether::ctl {

// Returns the process exit status: 0 on success, 1 when the call failed or a followed command
// did not succeed (one line on `err`), 2 for a usage error.
int RunCtl(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace tether::ctl

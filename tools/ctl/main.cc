// tetherctl: the operator's command line; the commands are in tools/ctl/commands/, one file per noun.
#include <iostream>

#include "tools/ctl/ctl.h"

int main(int argc, char** argv) { return tether::ctl::RunCtl(argc, argv, std::cout, std::cerr); }

// Reads a data file of the source tree; the build system gives its path
// (argument 1, or EXAMPLE_DATA in the environment).
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

int main(int argc, char **argv)
{
  const char *path = argc > 1 ? argv[1] : std::getenv("EXAMPLE_DATA");
  if (!path) {
    std::cerr << "usage: datafile PATH (or EXAMPLE_DATA=PATH)\n";
    return 2;
  }
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) {
    std::cerr << "cannot read " << path << "\n";
    return 1;
  }
  std::cout << path << ": " << line << "\n";
  return line == "vmexec example data" ? 0 : 1;
}

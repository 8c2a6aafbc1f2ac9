// Reads the file that the writer test wrote before it (argument 1, default
// handoff.txt in the working directory).
#include <fstream>
#include <iostream>
#include <string>

int main(int argc, char **argv)
{
  const std::string path = argc > 1 ? argv[1] : "handoff.txt";
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) {
    std::cerr << "cannot read " << path << ": did the writer test run first?\n";
    return 1;
  }
  std::cout << path << ": " << line << "\n";
  return line.rfind("written on ", 0) == 0 ? 0 : 1;
}

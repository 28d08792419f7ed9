// backdrop-generate-cpp — generate backgrounds for a transparent product PNG with libbackdrop's
// C++ wrapper (backdrop.hpp), built through find_package(backdrop) (see CMakeLists.txt).
//
//   backdrop-generate-cpp IMAGE.png "PROMPT" [OUT_PREFIX]
//
// Reads PICWISH_API_KEY (required), PICWISH_BASE_URL (optional, e.g. an emulator) and PICWISH_QPS
// (optional). Writes OUT_PREFIX-1.jpg and OUT_PREFIX-2.jpg (the prefix defaults to the image's
// name without ".png"): results are numbered from 1, as the service's image_1 and image_2.
// Exit status: 0 done, 1 failed, 2 bad usage or configuration, 3 input refused locally.
#include <backdrop.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

std::string env(const char *name) {
    const char *value = std::getenv(name);
    return value != nullptr ? std::string(value) : std::string();
}

// The usual extension of an image file, from its first bytes (the service sends JPEG, PNG or
// WebP).
std::string extension_of(const std::vector<std::uint8_t> &data) {
    if (data.size() > 3 && data[0] == 0x89 && data[1] == 'P' && data[2] == 'N' && data[3] == 'G') {
        return "png";
    }
    if (data.size() > 11 && std::string(data.begin(), data.begin() + 4) == "RIFF" &&
        std::string(data.begin() + 8, data.begin() + 12) == "WEBP") {
        return "webp";
    }
    return "jpg";
}

// Writes through a temporary file and a rename, so `path` never holds a partial image.
bool write_file(const std::string &path, const std::vector<std::uint8_t> &data) {
    const std::string temp = path + ".part";
    {
        std::ofstream out(temp, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char *>(data.data()),
                  static_cast<std::streamsize>(data.size()));
        if (!out.flush()) {
            std::remove(temp.c_str());
            return false;
        }
    }
    if (std::rename(temp.c_str(), path.c_str()) != 0) {
        std::remove(temp.c_str());
        return false;
    }
    return true;
}

int exit_status(const backdrop::error &e) {
    const auto code = static_cast<unsigned>(e.code());
    if (code >= 7100 && code < 7200) return 3;  // refused locally: nothing was sent
    if (e.code() == BACKDROP_ERR_CONFIG) return 2;
    return 1;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        std::cerr << "usage: " << argv[0] << " IMAGE.png PROMPT [OUT_PREFIX]\n";
        return 2;
    }
    const std::string image = argv[1];
    const std::string prompt = argv[2];
    std::string prefix;
    if (argc == 4) {
        prefix = argv[3];
    } else {
        prefix = image.substr(image.find_last_of('/') + 1);
        if (prefix.size() > 4 && prefix.compare(prefix.size() - 4, 4, ".png") == 0) {
            prefix.resize(prefix.size() - 4);
        }
    }
    const std::string key = env("PICWISH_API_KEY");
    if (key.empty()) {
        std::cerr << "backdrop-generate-cpp: set PICWISH_API_KEY (and PICWISH_BASE_URL for an "
                     "emulator)\n";
        return 2;
    }

    try {
        backdrop::client_builder builder(key);
        if (!env("PICWISH_BASE_URL").empty()) builder.base_url(env("PICWISH_BASE_URL"));
        if (!env("PICWISH_QPS").empty()) {
            builder.qps(static_cast<std::uint32_t>(std::strtoul(env("PICWISH_QPS").c_str(),
                                                                nullptr, 10)));
        }
        const backdrop::client client = builder.build();

        backdrop::request request;
        request.image_path(image).prompt(prompt);
        backdrop::task task = client.create_task(request);  // checked locally first
        std::cerr << "backdrop-generate-cpp: task " << task.id() << " created\n";

        client.wait(task, std::chrono::milliseconds(0), [](const backdrop::progress &p) {
            std::cerr << "backdrop-generate-cpp: state " << p.state << ", progress " << p.percent
                      << "%\n";
            return backdrop::progress_action::keep_waiting;
        });

        // Results are numbered from 1 (data.image_1) to result_count().
        for (std::size_t number = 1; number <= task.result_count(); ++number) {
            const std::vector<std::uint8_t> data = client.download(task, number);
            const std::string path =
                prefix + "-" + std::to_string(number) + "." + extension_of(data);
            if (!write_file(path, data)) {
                std::cerr << "backdrop-generate-cpp: cannot write " << path << "\n";
                return 1;
            }
            std::cout << path << "\n";
        }
        return 0;
    } catch (const backdrop::error &e) {
        std::cerr << "backdrop-generate-cpp: " << e.name() << ": " << e.what() << "\n";
        if (!e.task_id().empty()) {
            std::cerr << "backdrop-generate-cpp: task id " << e.task_id() << "\n";
        }
        return exit_status(e);
    } catch (const std::exception &e) {
        std::cerr << "backdrop-generate-cpp: " << e.what() << "\n";
        return 1;
    }
}

using System.Reflection;
using System.Runtime.InteropServices;

namespace Audience.Silo.Kafka;

/// <summary>
/// Loads librdkafka from the librdkafka.redist package for every Kafka client of this process. The package's plain
/// Linux build needs libsasl2.so.3, which Debian 12 lacks; the loader would then fall back to any system librdkafka
/// (Debian's 2.0.2 lacks functions Confluent.Kafka 2.x calls and crashes on the first consume). The package's
/// <c>centos8-librdkafka.so</c> loads on Debian 12, so "librdkafka" is mapped to it. Our own P/Invokes into
/// librdkafka (the tests' mock-cluster host) must use <see cref="Handle"/>, the same library.
/// </summary>
public static class KafkaNative
{
    private static readonly Lazy<IntPtr> Loaded = new(Load);
    private static int _registered;

    /// <summary>Maps Confluent.Kafka's "librdkafka" to the packaged library; call before building a client. Idempotent.</summary>
    public static void Use()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 0)
        {
            NativeLibrary.SetDllImportResolver(typeof(Confluent.Kafka.Library).Assembly, Resolve);
        }
    }

    /// <summary>The loaded library, for P/Invokes of other assemblies (register a resolver that returns it).</summary>
    public static IntPtr Handle => Loaded.Value;

    /// <summary>The resolver other assemblies register for their own "librdkafka" imports.</summary>
    public static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath) =>
        name == "librdkafka" ? Loaded.Value : IntPtr.Zero;

    private static IntPtr Load()
    {
        var architecture = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64";
        var packaged = Path.Combine(AppContext.BaseDirectory, "runtimes", architecture, "native", "centos8-librdkafka.so");
        if (OperatingSystem.IsLinux() && File.Exists(packaged))
        {
            return NativeLibrary.Load(packaged);
        }

        // Elsewhere (macOS, Windows, a trimmed deployment), the package's own choice is right.
        return NativeLibrary.Load("librdkafka", typeof(Confluent.Kafka.Library).Assembly, null);
    }
}

using BenchmarkDotNet.Running;

namespace Audience.Benchmarks;

public static class Program
{
    /// <summary>Run with: dotnet run -c Release --project tests/Audience.Benchmarks -- --filter '*'</summary>
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}

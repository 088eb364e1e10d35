using System.Diagnostics;
using System.Threading.Channels;
using Audience.Rules.Engines;
using Audience.Silo.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Audience.Silo.Processing;

/// <summary>
/// Keeps the NRules engine's rule set in step with the segments (<c>Rules:Engine=nrules</c>): the segments loaded at
/// start-up, then every change, wake it; it compiles a new set off the evaluation path and the engine swaps it in.
/// Changes that arrive during a compile are taken by the next one, so a burst costs one or two compiles. Until a set
/// holds a segment, the engine evaluates that segment with its compiled delegate, so nothing waits for a compile.
/// </summary>
public sealed partial class NRulesRecompiler(NRulesSegmentEngine engine, ILogger<NRulesRecompiler> logger) : BackgroundService
{
    private readonly Channel<bool> _changed = Channel.CreateBounded<bool>(new BoundedChannelOptions(1)
    {
        FullMode = BoundedChannelFullMode.DropWrite,
        SingleReader = true,
    });

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        engine.Index.Changed += OnChanged;
        _changed.Writer.TryWrite(true);
        return base.StartAsync(cancellationToken);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        engine.Index.Changed -= OnChanged;
        _changed.Writer.TryComplete();
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
    }

    private void OnChanged() => _changed.Writer.TryWrite(true);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // A compile is seconds of CPU: never on the thread that started the host or changed a segment.
        await Task.Yield();
        try
        {
            while (await _changed.Reader.WaitToReadAsync(stoppingToken).ConfigureAwait(false))
            {
                _changed.Reader.TryRead(out _);
                Compile(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: NRules' compiler checks the token between rules, so a compile in progress ends soon too.
        }
    }

    private void Compile(CancellationToken stoppingToken)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            if (engine.Rebuild(stoppingToken))
            {
                var elapsed = Stopwatch.GetElapsedTime(started);
                LogCompiled(engine.RuleCount, elapsed.TotalMilliseconds);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The set in use stays; the segments it does not hold are evaluated by their compiled delegates meanwhile.
            LogFailed(e);
        }
    }

    [LoggerMessage(EventId = LogEvents.NRulesCompiled, Level = LogLevel.Information, Message = "Compiled the NRules rule set of {Rules} segments in {Milliseconds:F0} ms; it is in use")]
    private partial void LogCompiled(int rules, double milliseconds);

    [LoggerMessage(EventId = LogEvents.NRulesFailed, Level = LogLevel.Error, Message = "Compiling the NRules rule set failed; the set in use stays, and segments it lacks are evaluated by their compiled rules until the next change")]
    private partial void LogFailed(Exception exception);
}

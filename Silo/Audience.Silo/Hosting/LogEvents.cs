using Microsoft.Extensions.Logging;

namespace Audience.Silo.Hosting;

/// <summary>
/// Every log event id of the Api and the Silo, in one place, by component (the Aerospike client keeps its own, 9100 on,
/// in Silo/Audience.Aerospike/Log.cs). Each is used by one <see cref="LoggerMessageAttribute"/>; a test checks that ids
/// are unique and that docs/operations.md (Log events) lists them all.
/// </summary>
public static class LogEvents
{
    // 1000: the embedded event log
    public const int EventLogCommitFailed = 1001;

    // 2000: user grains
    public const int UserGrainDeadLetter = 2002;
    public const int UserGrainWriteOnDeactivationFailed = 2003;
    public const int UserGrainErased = 2004;

    // 2100: partition readers
    public const int ReaderStarted = 2101;
    public const int ReaderApplyFailed = 2102;
    public const int ReaderSweepFailed = 2103;
    public const int ReaderRetrying = 2104;
    public const int ReaderDeadLetter = 2105;
    public const int ReaderBackfilled = 2106;
    public const int ReaderWriteFailed = 2107;
    public const int ReaderReadingAgain = 2108;
    public const int ReaderFinalWriteFailed = 2109;
    public const int ReaderErasureFailed = 2110;

    // 2200: partition grains
    public const int PartitionGrainMoving = 2201;
    public const int PartitionGrainStopped = 2202;
    public const int PartitionGrainReleased = 2203;

    // 2300: the partition supervisor
    public const int SupervisorPingFailed = 2301;

    // 2400: housekeeping
    public const int HousekeepingPruned = 2401;
    public const int HousekeepingFailed = 2402;

    // 2500: the NRules segment engine
    public const int NRulesCompiled = 2501;
    public const int NRulesFailed = 2502;

    // 2600: resilience pipelines
    public const int CircuitOpened = 2601;
    public const int CircuitHalfOpened = 2602;
    public const int CircuitClosed = 2603;

    // 3000: Kafka: partition sources
    public const int KafkaSourceError = 3003;

    // 3100: Kafka: consumer lag and segment-updates
    public const int ConsumerLagReadFailed = 3101;
    public const int ConsumerLagGate = 3102;
    public const int SegmentUpdatesFailed = 3111;
    public const int SegmentUpdatesNoStart = 3112;

    // 3200: the segment outbox
    public const int SegmentOutboxFailed = 3201;

    // 3300: the change feed
    public const int ChangeFeedFailed = 3301;

    // 3400: the Api's cluster client
    public const int ClusterConnected = 3401;
    public const int ClusterNotConnected = 3402;

    // 4000: health
    public const int ReadinessChanged = 4001;

    // 5000: campaigns
    public const int CampaignsBuilt = 5001;
    public const int CampaignsRefreshFailed = 5002;
    public const int CampaignsConditionInvalid = 5003;

    // 5100: scheduled broadcasts
    public const int BroadcastCompleted = 5101;
    public const int BroadcastInterrupted = 5102;
    public const int BroadcastCheckFailed = 5103;
    public const int BroadcastMemberSkipped = 5104;

    // 6000: access (the Api)
    public const int AccessNoKeys = 6001;
    public const int AccessKeysConfigured = 6002;
}

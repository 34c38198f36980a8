// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title JobRegistry
/// @notice On-chain record of automation jobs: who owns a job, the hash of its
///         specification (kept off chain), and whether it is still active.
///         Only a job's owner may change or cancel it; a cancelled job stays
///         recorded (there is no delete) and can no longer be changed.
contract JobRegistry {
    enum Status {
        None,
        Active,
        Cancelled
    }

    struct Job {
        address owner;
        Status status;
        uint64 createdAt;
        uint64 updatedAt;
        bytes32 specHash;
    }

    /// @notice Id of the next job; ids start at 1 so that 0 never names a job.
    uint256 public nextJobId = 1;
    mapping(uint256 => Job) private _jobs;

    event JobCreated(uint256 indexed jobId, address indexed owner, bytes32 specHash);
    event JobUpdated(uint256 indexed jobId, bytes32 previousSpecHash, bytes32 specHash);
    event JobCancelled(uint256 indexed jobId);

    error UnknownJob(uint256 jobId);
    error NotJobOwner(uint256 jobId, address caller);
    error JobNotActive(uint256 jobId);
    error EmptySpecHash();

    function createJob(bytes32 specHash) external returns (uint256 jobId) {
        if (specHash == bytes32(0)) revert EmptySpecHash();
        jobId = nextJobId++;
        _jobs[jobId] = Job({
            owner: msg.sender,
            status: Status.Active,
            createdAt: uint64(block.timestamp),
            updatedAt: uint64(block.timestamp),
            specHash: specHash
        });
        emit JobCreated(jobId, msg.sender, specHash);
    }

    function updateJob(uint256 jobId, bytes32 specHash) external {
        if (specHash == bytes32(0)) revert EmptySpecHash();
        Job storage job = _activeJobOfSender(jobId);
        emit JobUpdated(jobId, job.specHash, specHash);
        job.specHash = specHash;
        job.updatedAt = uint64(block.timestamp);
    }

    function cancelJob(uint256 jobId) external {
        Job storage job = _activeJobOfSender(jobId);
        job.status = Status.Cancelled;
        job.updatedAt = uint64(block.timestamp);
        emit JobCancelled(jobId);
    }

    function getJob(uint256 jobId) external view returns (Job memory) {
        Job memory job = _jobs[jobId];
        if (job.status == Status.None) revert UnknownJob(jobId);
        return job;
    }

    function _activeJobOfSender(uint256 jobId) private view returns (Job storage job) {
        job = _jobs[jobId];
        if (job.status == Status.None) revert UnknownJob(jobId);
        if (job.owner != msg.sender) revert NotJobOwner(jobId, msg.sender);
        if (job.status != Status.Active) revert JobNotActive(jobId);
    }
}
